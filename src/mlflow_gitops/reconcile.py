"""The one orchestration module: read, plan, check, apply, in that order."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from mlflow_gitops.apply import Progress, apply
from mlflow_gitops.audit import AuditContext, from_environment
from mlflow_gitops.errors import (
    DENIED,
    GitopsError,
    PermissionDenied,
    RegistryError,
    SpecError,
    SpecIssue,
    StalePlanError,
)
from mlflow_gitops.gates.cache import not_recorded
from mlflow_gitops.gates.port import Evidence
from mlflow_gitops.gates.run import GateRun, run_gates
from mlflow_gitops.importer import (
    TREE_FOLDER,
    TreeFile,
    declared_elsewhere,
    include_patterns,
    tree_files,
    tree_paths,
)
from mlflow_gitops.observed import RegistryState
from mlflow_gitops.outcome import ApplyResult
from mlflow_gitops.permissions import WHAT_NEEDS, needed
from mlflow_gitops.plan.changes import CopyVersion, CreateModel, Plan, RegisterVersion
from mlflow_gitops.plan.planner import history_drifted
from mlflow_gitops.plan.planner import plan as compute_plan
from mlflow_gitops.plan.tree import RegistryPlan, TreePlan
from mlflow_gitops.record import AUDIT_EXPERIMENT, SourceRef
from mlflow_gitops.registry.copy import Credentials, find_copies
from mlflow_gitops.registry.port import RegistryPort
from mlflow_gitops.render.common import describe
from mlflow_gitops.render.json import plan_document
from mlflow_gitops.secrets import redact, register_secrets
from mlflow_gitops.settings import NoTrackingUri, registry_identity, resolve_tracking_uri
from mlflow_gitops.spec.load import LoadedSpec, format_loc, locate
from mlflow_gitops.spec.model import DEFAULT_REGISTRY
from mlflow_gitops.spec.tree import DeclaredModel, LoadedTree, ModelKey, load_tree, resolve_registry

SAVED_PLAN_KIND = "mlflow-gitops-plan"


@dataclass(frozen=True)
class Planned:
    """A plan and the registry state it was computed from."""

    plan: Plan
    observed: RegistryState


def open_registry(uri: str, credentials: Credentials | None = None) -> RegistryPort:
    """The MLflow adapter; imported here so that validate, schema and --help never load mlflow.
    `credentials`: this registry's own (a tree's named registry); None: MLflow's variables."""
    from mlflow_gitops.registry.client import MlflowRegistry

    return MlflowRegistry(uri, credentials)


def open_evidence(
    uri: str,
    credentials: Credentials | None = None,
    registries: Mapping[str, tuple[str, Credentials | None]] | None = None,
) -> Evidence:
    """Gate evidence through MLflow, connected only when a gate first needs it: this registry's
    models with its own credentials, and those of `registries` (by name: the sources of copies)
    with theirs."""
    return _LazyEvidence(uri, credentials, registries or {})


class _LazyEvidence:
    def __init__(
        self,
        uri: str,
        credentials: Credentials | None,
        registries: Mapping[str, tuple[str, Credentials | None]],
    ) -> None:
        self.uri, self.credentials, self.registries = uri, credentials, registries
        self._real: Evidence | None = None

    @property
    def real(self) -> Evidence:
        if self._real is None:
            from mlflow_gitops.gates.evidence import MlflowEvidence

            self._real = MlflowEvidence(self.uri, self.credentials, self.registries)
        return self._real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@dataclass(frozen=True)
class PlanFile:
    """A file whose models one registry plan covers, and the name errors give it."""

    loaded: LoadedSpec
    shown: str


def make_plan(
    loaded: LoadedSpec,
    registry: RegistryPort,
    evidence: Evidence | None,
    now: datetime,
) -> Planned:
    """Read the managed models once, plan, check that runs to register exist, run the gates.
    `now` is the one clock of the plan: the soak-time policy and the gates both measure by it."""
    return plan_files([PlanFile(loaded, str(loaded.path))], registry, evidence, now)


def plan_files(
    files: Sequence[PlanFile],
    registry: RegistryPort,
    evidence: Evidence | None,
    now: datetime,
    *,
    name: str = DEFAULT_REGISTRY,
    identities: Mapping[str, str] | None = None,
) -> Planned:
    """make_plan over the files of one registry (a tree's): one read of all their models, each
    file planned with its own defaults, one Plan. `name` is the registry's name in the tree and
    `identities` every registry's identity by name (copies are matched by provenance)."""
    observed = registry.read([m for f in files for m in f.loaded.spec.models])
    # the audit record is read only for models whose history block was removed or edited
    drifted = history_drifted(observed)
    records = registry.read_records(drifted) if drifted else {}
    plans: list[tuple[PlanFile, Plan]] = []
    issues: list[SpecIssue] = []
    copies = match_copies(files, observed, name, identities or {})
    for f in files:
        try:
            planned = compute_plan(
                f.loaded,
                observed,
                now,
                records=records,
                registry=name,
                copies=copies,
                file=f.shown,
            )
            _check_runs(planned, f, registry)
        except SpecError as exc:
            issues += exc.issues
            continue
        plans.append((f, planned))
    if issues:
        raise SpecError(issues)
    if evidence is None:
        return Planned(merge_plans([p for _, p in plans]), observed)
    return Planned(_gate_files(plans, registry, observed, evidence, now, identities), observed)


def _gate_files(
    plans: Sequence[tuple[PlanFile, Plan]],
    registry: RegistryPort,
    observed: RegistryState,
    evidence: Evidence,
    now: datetime,
    identities: Mapping[str, str] | None,
) -> Plan:
    """Each file's gates on its own plan (the gate spec is the file's), their records written;
    one Plan of them all."""
    return merge_plans(
        [
            _record_gates(registry, run_gates(f.loaded, p, observed, evidence, now, identities))
            for f, p in plans
        ]
    )


def match_copies(
    files: Sequence[PlanFile],
    observed: RegistryState,
    registry: str,
    identities: Mapping[str, str],
) -> dict[tuple[str, str], int]:
    """The live version each copy_from entry was copied into, by (model, entry key): the
    version whose provenance tags name the entry's source registry (by identity), model and
    version. An entry whose registry has no identity here matches nothing."""
    found: dict[tuple[str, str], int] = {}
    for f in files:
        for model, spec in f.loaded.spec.models.items():
            for entry in spec.versions:
                if entry.copy_from is None:
                    continue
                source = entry.copy_from.in_registry(registry)
                identity = identities.get(source.registry or registry)
                if identity is None:
                    continue
                ref = SourceRef(identity, source.model, source.version)
                number = find_copies(observed.models.get(model), [ref]).get(ref)
                if number is not None:
                    found[(model, entry.key)] = number
    return found


def merge_plans(plans: Sequence[Plan]) -> Plan:
    """One Plan of the plans of several files of one registry (their models are distinct):
    changes by model, each model's in its planned order."""
    if len(plans) == 1:
        return plans[0]
    return Plan(
        changes=tuple(sorted((c for p in plans for c in p.changes), key=lambda c: c.model)),
        blocked={k: v for p in plans for k, v in p.blocked.items()},
        unmanaged={k: v for p in plans for k, v in p.unmanaged.items()},
        observed={k: v for p in plans for k, v in p.observed.items()},
        gates=tuple(g for p in plans for g in p.gates),
        notes=tuple(n for p in plans for n in p.notes),
    )


def _record_gates(registry: RegistryPort, run: GateRun) -> Plan:
    """Write the gate records the run asks for; the plan says which could not be written."""
    notes = []
    for record in run.records:
        try:
            registry.set_version_tag(record.model, record.version, record.key, record.value)
        except RegistryError as exc:
            notes.append(not_recorded(record, exc.message))
    return run.plan.model_copy(update={"notes": (*run.plan.notes, *notes)}) if notes else run.plan


def _check_runs(plan: Plan, file: PlanFile, registry: RegistryPort) -> None:
    loaded = file.loaded
    new = [c for c in plan.changes if isinstance(c, RegisterVersion) and c.run_id]
    missing = registry.missing_runs(sorted({c.run_id for c in new if c.run_id}))
    if not missing:
        return
    issues = []
    for change in new:
        if change.run_id not in missing:
            continue
        model = loaded.spec.models[change.model]
        index = next(i for i, v in enumerate(model.versions) if v.key == change.entry)
        loc = ("models", change.model, "versions", index, "run")
        _, pos = locate(loc, loaded.positions)
        issues.append(
            SpecIssue(
                file.shown,
                pos.line,
                pos.column,
                format_loc(loc),
                f"run {change.run_id} does not exist in the tracking server",
                "check the run id (mlflow-gitops propose lists the best runs)",
            )
        )
    raise SpecError(issues)


def apply_plan(
    planned: Planned,
    registry: RegistryPort,
    audit: AuditContext,
    now: datetime,
    *,
    parallelism: int = 4,
    progress: Progress | None = None,
    sources: Mapping[str, RegistryPort] | None = None,
    checked: bool = False,
) -> ApplyResult:
    """Apply a plan that was just computed (or checked fresh) against this registry, after
    checking that this user may make every change (nothing is written, not even the lock, when
    it may not; `checked`: the caller did). `sources`: the registries copies come from."""
    if not checked:
        check_permissions(planned.plan, registry)
    return apply(
        planned.plan,
        planned.observed,
        registry,
        audit,
        now,
        parallelism=parallelism,
        progress=progress,
        sources=sources,
    )


def check_permissions(plan: Plan, registry: RegistryPort) -> None:
    """Refuse the whole apply, before the lock and any write, when the user lacks a permission a
    planned change needs (servers with authentication): names each model, its operations and
    the permission. Every change is annotated (tags, description), so any change needs EDIT."""
    missing: list[str] = []
    for model in plan.models:
        changes = [] if model in plan.blocked else plan.changes_for(model)
        if not changes:
            continue
        if any(isinstance(c, CreateModel) for c in changes):
            if not registry.can(model, "READ"):
                missing.append(
                    f"{model}: exists but this user may not read it (READ), so it looked "
                    "absent and the plan would create it"
                )
            continue  # MLflow grants MANAGE on a model to the user who creates it
        edits = [describe(c) for c in changes if needed(c) == "EDIT"] or ["annotate versions"]
        manages = [describe(c) for c in changes if needed(c) == "MANAGE"]
        can_edit = registry.can(model, "EDIT")
        if not can_edit:
            missing.append(_lacking(model, edits, "EDIT"))
        if manages and (not can_edit or not registry.can(model, "MANAGE")):
            missing.append(_lacking(model, manages, "MANAGE"))
    writes = any(plan.changes_for(m) for m in plan.models if m not in plan.blocked)
    if writes and not registry.can_record():
        missing.append(
            f"experiment {AUDIT_EXPERIMENT} (the audit record of every apply): logging this "
            "apply's run in it needs EDIT"
        )
    if missing:
        raise PermissionDenied(
            f"{DENIED}: {registry.user} lacks permissions this plan needs; nothing was "
            "changed (not "
            "even the apply lock):\n" + "".join(f"    {line}\n" for line in missing).rstrip(),
            f"ask an MLflow admin to grant them, or apply as a user who holds them ({WHAT_NEEDS})",
        )


def _lacking(model: str, operations: list[str], permission: str) -> str:
    more = f" and {len(operations) - 3} more" if len(operations) > 3 else ""
    return f"{model}: {'; '.join(operations[:3])}{more}: needs {permission}"


# --- requests: what a command was given, sequenced; the CLI and the GitHub publisher render ---


def _ignore(_: object) -> None:
    """Progress (or a plan) nobody shows."""


@dataclass(frozen=True)
class PlanRequest:
    """What `plan` (or `comment`) was given. `now` is the clock of the whole command.
    `registries` and `models` (empty: all) restrict the plan to part of the tree."""

    file: Path
    tracking_uri: str | None
    now: datetime
    out: Path | None = None  # also save the plan here, for `apply PLAN`
    local_default: bool = True  # False: never sqlite:///mlflow.db (pull-request comments)
    registries: tuple[str, ...] = ()
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class Opened:
    """One selected registry of the tree: where it is, its adapter, and its plan."""

    name: str
    uri: str
    registry: RegistryPort
    planned: Planned


@dataclass(frozen=True)
class PlanOutcome:
    """The plan of every selected registry (in declared order), the TreePlan every renderer
    takes, and the folder of the root file."""

    opened: tuple[Opened, ...]
    tree: TreePlan
    folder: Path
    sources: dict[str, RegistryPort] = field(default_factory=dict)  # every registry opened

    @property
    def planned(self) -> Planned:
        """The plan of the first (for a file without registries:, the only) registry."""
        return self.opened[0].planned

    @property
    def uri(self) -> str:
        return self.opened[0].uri

    @property
    def plan(self) -> Plan:
        """The one registry's plan; over several registries, all their changes (use `tree`
        to tell the registries apart)."""
        if len(self.opened) == 1:
            return self.planned.plan
        return merge_plans([o.planned.plan for o in self.opened])


@dataclass(frozen=True)
class ApplyRequest:
    """What `apply` was given: a registry file or a saved plan, and the audit overrides.
    `clock` is the command's one clock: read when planning starts and again when the first
    write is made, so the annotations say when the change was made, not when gates began."""

    target: Path
    tracking_uri: str | None
    clock: Callable[[], datetime]
    commit: str | None = None
    actor: str | None = None
    pr: int | None = None
    parallelism: int = 4
    registries: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    # policies: the plan judged before anything is shown or written (unmet rules block models)
    judge: Callable[[PlanOutcome], PlanOutcome] | None = None


@dataclass(frozen=True)
class RegistryResult:
    """What became of one registry's plan: None when it was empty, or not applied because an
    earlier registry failed (`skipped`)."""

    name: str
    uri: str
    result: ApplyResult | None
    skipped: bool = False


@dataclass(frozen=True)
class ApplyOutcome:
    """The plan that was applied, where, and the result (None: the plan was empty); over a
    tree, each registry's result in apply order."""

    plan: Plan
    uri: str
    result: ApplyResult | None
    registries: tuple[RegistryResult, ...] = ()
    tree: TreePlan | None = None

    @property
    def ok(self) -> bool:
        return all(r.result is None or r.result.ok for r in self.registries) and (
            self.result is None or self.result.ok
        )


def plan_request(request: PlanRequest, progress: Callable[[str], None] = _ignore) -> PlanOutcome:
    """Load the tree, read and plan each selected registry (concurrently), check the sources
    of copies; save the plan when asked."""
    return _plan_tree(request, progress)


def apply_request(
    request: ApplyRequest,
    progress: Callable[[str], None] = _ignore,
    on_plan: Callable[[PlanOutcome], None] = _ignore,
) -> ApplyOutcome:
    """Plan the tree (or check a saved plan fresh), then apply it registry by registry, in
    declared order; a registry that fails stops the ones after it. `on_plan` is told the plan
    before anything is written, so the plan is shown even when the apply is refused."""
    if is_saved_plan(request.target):
        if request.registries or request.models:
            raise GitopsError(
                "--registry and --model select part of a tree to plan; a saved plan applies "
                "as it was saved",
                "drop them, or run `plan --out` with them",
            )
        saved = load_plan(request.target)
        tree = saved_tree(saved)
        name, uri, credentials = saved_registry(saved, tree, request.tracking_uri)
        registry = _open(uri, credentials)
        folder = Path(saved.file).resolve().parent if saved.file else Path.cwd()
        evidence = open_evidence(uri, credentials, {name: (uri, credentials)})
        planned = check_fresh(saved, registry, evidence, request.clock(), tree=tree)
        opened = Opened(name, uri, registry, planned)
        outcome = PlanOutcome((opened,), _tree_plan([opened], {}, ((), ())), folder)
    else:
        outcome = _plan_tree(
            PlanRequest(
                request.target,
                request.tracking_uri,
                request.clock(),
                registries=request.registries,
                models=request.models,
            ),
            progress,
        )
    if request.judge is not None:
        outcome = request.judge(outcome)
    on_plan(outcome)
    if outcome.tree.is_empty:
        return ApplyOutcome(outcome.plan, outcome.uri, None, tree=outcome.tree)
    # every registry's permissions first: a refusal anywhere changes nothing anywhere
    for o in outcome.opened:
        check_permissions(o.planned.plan, o.registry)
    audit = from_environment(
        cwd=outcome.folder, commit=request.commit, actor=request.actor, pr=request.pr
    )
    results: list[RegistryResult] = []
    failed = False
    for o in outcome.opened:
        if o.planned.plan.is_empty:
            results.append(RegistryResult(o.name, o.uri, None))
            continue
        if failed:
            results.append(RegistryResult(o.name, o.uri, None, skipped=True))
            continue
        # SQLite serialises writers; parallel writes only add lock contention
        parallelism = 1 if o.uri.startswith("sqlite:") else request.parallelism
        where = f" in {o.name}" if len(outcome.opened) > 1 else ""

        def told(model: str, done: int, total: int, where: str = where) -> None:
            progress(f"applied {done}/{total} models{where} ({model})")

        result = apply_plan(
            o.planned,
            o.registry,
            audit,
            request.clock(),
            parallelism=parallelism,
            progress=told,
            sources=outcome.sources,
            checked=True,
        )
        results.append(RegistryResult(o.name, o.uri, result))
        failed = not result.ok
    single = results[0].result if len(results) == 1 else _merged(results)
    return ApplyOutcome(outcome.plan, outcome.uri, single, tuple(results), outcome.tree)


def _merged(results: Sequence[RegistryResult]) -> ApplyResult | None:
    done = [r.result for r in results if r.result is not None]
    if not done:
        return None
    return ApplyResult(steps=tuple(s for r in done for s in r.steps))


# --- a tree: selection, registries, concurrent reads ----------------------------------------------


def select(
    tree: LoadedTree, registries: Sequence[str], models: Sequence[str]
) -> dict[str, list[DeclaredModel]]:
    """The selected registries (declared order) and their selected models; an unknown name is
    an error that lists the known ones. With --model, a registry without any of the models is
    not selected (it is neither read nor changed)."""
    order = list(tree.registries) or [DEFAULT_REGISTRY]
    unknown = [r for r in registries if r not in order]
    if unknown:
        raise GitopsError(
            f"unknown registry {', '.join(map(repr, unknown))} (--registry); "
            f"{tree.root.name} declares: {', '.join(order)}",
            "name a registry declared under registries: (a file without registries: has one, "
            f"'{DEFAULT_REGISTRY}')",
        )
    chosen = [r for r in order if not registries or r in registries]
    out: dict[str, list[DeclaredModel]] = {}
    for r in chosen:
        declared = tree.models_in(r)
        if models:
            declared = [m for m in declared if m.name in models]
            if not declared:
                continue
        out[r] = declared
    if models:
        found = {m.name for ms in out.values() for m in ms}
        missing = [m for m in models if m not in found]
        if missing:
            known = sorted({m.name for r in chosen for m in tree.models_in(r)})
            listed = ", ".join(known[:20]) + (
                f" and {len(known) - 20} more" if len(known) > 20 else ""
            )
            raise GitopsError(
                f"no model {', '.join(map(repr, missing))} (--model) in "
                f"{'registry ' + ', '.join(chosen) if registries else tree.root.name}; "
                f"declared: {listed or 'none'}",
                "name a model the tree declares (names are case-sensitive)",
            )
    return out


def _plan_tree(request: PlanRequest, progress: Callable[[str], None]) -> PlanOutcome:
    tree = load_tree(request.file)
    chosen = select(tree, request.registries, request.models)
    if request.tracking_uri and len(chosen) > 1:
        raise GitopsError(
            f"--tracking-uri names one registry, but {len(chosen)} are selected "
            f"({', '.join(chosen)})",
            "select one with --registry NAME, or drop --tracking-uri (each registry's URI comes "
            "from registries: in the root file)",
        )
    if request.out is not None and len(chosen) > 1:
        raise GitopsError(
            f"a saved plan covers one registry, but {len(chosen)} are selected "
            f"({', '.join(chosen)}); nothing was read",
            "save one plan per registry (plan --registry NAME --out NAME.json), or apply the "
            "tree directly",
        )
    # the sources of copies: registries the selected models copy from
    sources = {
        source.registry
        for models in chosen.values()
        for m in models
        for entry in m.spec.versions
        if (source := m.copy_source(entry)) is not None and source.registry
    }
    where = {
        name: _resolve(
            tree,
            name,
            request.tracking_uri if name in chosen else None,
            local_default=request.local_default,
        )
        for name in [*chosen, *sorted(sources - set(chosen))]
    }
    identities = {name: registry_identity(uri) for name, (uri, _) in where.items()}
    opened: dict[str, RegistryPort] = {}
    for name, (uri, credentials) in where.items():
        if name in chosen:  # a source registry is opened only when a copy needs it
            opened[name] = _open(uri, credentials)

    def plan_one(name: str) -> Opened:
        uri, credentials = where[name]
        files = _files(tree, chosen[name])
        progress(
            f"reading {sum(len(f.loaded.spec.models) for f in files)} models from {uri} and "
            "running gates ..."
        )
        planned = plan_files(
            files,
            opened[name],
            # the gates of a copy not made yet read its source in its own registry
            open_evidence(uri, credentials, where),
            request.now,
            name=name,
            identities=identities,
        )
        return Opened(name, uri, opened[name], planned)

    # gate evidence names its registry in every request (no MLflow global): all concurrently
    done = _concurrently(plan_one, list(chosen))
    copies = [
        (o.name, c) for o in done for c in o.planned.plan.changes if isinstance(c, CopyVersion)
    ]
    for _, change in copies:
        if change.source_registry not in opened:
            uri, credentials = where[change.source_registry]
            opened[change.source_registry] = _open(uri, credentials)
    _check_sources(tree, copies, opened)
    if request.out is not None:
        if copies:
            raise GitopsError(
                "this plan copies versions from another registry, and a saved plan holds one "
                "registry; nothing was saved",
                "apply the tree directly (mlflow-gitops apply registry.yaml)",
            )
        only = done[0]
        save_plan(
            only.planned.plan, request.out, only.uri, request.file, request.now, name=only.name
        )
    selected = (tuple(request.registries), tuple(request.models))
    return PlanOutcome(
        tuple(done), _tree_plan(done, chosen, selected), tree.root.folder, dict(opened)
    )


def _resolve(
    tree: LoadedTree, name: str, flag: str | None, *, local_default: bool = True
) -> tuple[str, Credentials | None]:
    """A registry's URI and credentials; a file without registries: resolves as it always did
    (--tracking-uri, $MLFLOW_TRACKING_URI, tracking_uri:, the local default) with MLflow's own
    variables. A named registry's password and token are masked in all output from now on."""
    if not tree.registries:
        root = tree.root
        uri = resolve_tracking_uri(
            flag, root.spec.tracking_uri, root.folder, local_default=local_default
        )
        return uri, None
    resolved = resolve_registry(tree, name, os.environ, flag=flag)
    register_secrets(resolved.secrets)
    values, own = resolved.credentials, tree.registries[name]
    credentials = Credentials(
        username=values.get("MLFLOW_TRACKING_USERNAME"),
        password=values.get("MLFLOW_TRACKING_PASSWORD"),
        token=values.get("MLFLOW_TRACKING_TOKEN"),
        source=tuple(v for v in (own.username_env, own.password_env, own.token_env) if v),
    )
    return resolved.uri, credentials


def connect_named(tree: LoadedTree, name: str, flag: str | None) -> tuple[str, RegistryPort]:
    """One registry of a tree: its URI and an adapter that sends only its own credentials."""
    uri, credentials = _resolve(tree, name, flag)
    return uri, _open(uri, credentials)


def _open(uri: str, credentials: Credentials | None) -> RegistryPort:
    return open_registry(uri) if credentials is None else open_registry(uri, credentials)


def _files(tree: LoadedTree, models: Sequence[DeclaredModel]) -> list[PlanFile]:
    """The files of these models, in tree order, each restricted to them (errors name the root
    as they always did, an included file by its path from the root's folder)."""
    names: dict[Path, list[str]] = {}
    for m in models:
        names.setdefault(m.file.path, []).append(m.name)
    out = []
    for whole in tree.all_files:
        if whole.path not in names:
            continue
        keep = names[whole.path]
        f = whole
        if len(keep) != len(whole.spec.models):
            models_of = {n: whole.spec.models[n] for n in keep}
            f = LoadedSpec(
                whole.spec.model_copy(update={"models": models_of}),
                whole.path,
                whole.positions,
                whole.shown,
            )
        out.append(PlanFile(f, str(f.path) if f.path == tree.root.path else f.name))
    return out


_T = TypeVar("_T")


def _concurrently(fn: Callable[[str], _T], names: list[str]) -> list[_T]:
    """fn over every registry at once (one thread each), results in the given order; the
    located problems of every registry in one SpecError, else the first failure."""
    if len(names) == 1:
        return [fn(names[0])]
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="registry") as pool:
        futures = [pool.submit(fn, n) for n in names]
    issues: list[SpecIssue] = []
    out: list[_T] = []
    for future in futures:
        exc = future.exception()
        if isinstance(exc, SpecError):
            issues += exc.issues
        elif exc is not None:
            raise exc
        else:
            out.append(future.result())
    if issues:
        raise SpecError(issues)
    return out


def _check_sources(
    tree: LoadedTree, copies: Sequence[tuple[str, CopyVersion]], opened: Mapping[str, RegistryPort]
) -> None:
    """Every version about to be copied exists and its files can be read, asked of its own
    registry before anything is applied; each problem located at its copy_from."""
    issues = []
    for registry, change in copies:
        found = opened[change.source_registry].describe_source(
            change.source_model, change.source_version
        )
        if found.ok:
            continue
        declared = tree.models[ModelKey(registry, change.model)]
        index = next(i for i, v in enumerate(declared.spec.versions) if v.key == change.entry)
        loc = (*declared.loc, "versions", index, "copy_from")
        _, pos = locate(loc, declared.file.positions)
        issues.append(
            SpecIssue(
                declared.file.name,
                pos.line,
                pos.column,
                format_loc(loc),
                f"cannot {change.text()}: {found.problem}",
                "fix the copy_from entry (registry:model/version), or make the source version "
                "readable; nothing was applied",
            )
        )
    if issues:
        raise SpecError(issues)


def _tree_plan(
    done: Sequence[Opened],
    chosen: Mapping[str, Sequence[DeclaredModel]],
    selected: tuple[tuple[str, ...], tuple[str, ...]],
) -> TreePlan:
    registries = tuple(
        RegistryPlan(
            registry=o.name,
            identity=registry_identity(o.uri),
            plan=o.planned.plan,
            files={m.name: m.file.name for m in chosen.get(o.name, ())},
        )
        for o in done
    )
    return TreePlan(
        registries=registries, selected_registries=selected[0], selected_models=selected[1]
    )


# --- the registry of a lifecycle command (import, history, rollback, propose) --------------------


def connect(flag: str | None, file_uri: str | None, folder: Path) -> tuple[str, RegistryPort]:
    """The registry URI (settings' precedence) and the adapter for it."""
    uri = resolve_tracking_uri(flag, file_uri, folder)
    return uri, open_registry(uri)


def file_tracking_uri(text: str) -> str | None:
    """The tracking_uri of a registry file's text, without requiring a valid file."""
    import yaml

    try:
        data = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return None
    found = data.get("tracking_uri") if isinstance(data, dict) else None
    return found if isinstance(found, str) else None


def read_models(registry: RegistryPort, uri: str, names: Sequence[str] | None) -> RegistryState:
    """These models (None: all), read once; an error naming every one the registry lacks."""
    state = registry.read(names)
    missing = sorted(set(names or ()) - set(state.models))
    if missing:
        raise GitopsError(
            f"no registered model named {', '.join(map(repr, missing))} at {redact(uri)}",
            "check the names (they are case-sensitive)",
        )
    return state


# --- saved plans ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    tracking_uri: str | None
    file: str | None
    registry: str | None = None  # registry_identity() of the registry it was made against
    registry_name: str | None = None  # its name in the tree (None: an older mlflow-gitops)


def save_plan(
    plan: Plan,
    path: Path,
    tracking_uri: str,
    file: Path,
    now: datetime,
    *,
    name: str = DEFAULT_REGISTRY,
) -> None:
    """Write plan.json: the changes, a fingerprint of every model it read, and which registry
    of the tree (`name`) it was made against, whose credentials apply uses."""
    safe_uri = tracking_uri if redact(tracking_uri) == tracking_uri else None
    doc = plan_document(
        plan,
        kind=SAVED_PLAN_KIND,
        created_at=now.isoformat(timespec="seconds"),
        tracking_uri=safe_uri,
        file=str(file),
    )
    doc["registry"] = registry_identity(tracking_uri)  # never credentials; apply checks it
    doc["registry_name"] = name
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def is_saved_plan(path: Path) -> bool:
    """A JSON file written by `plan --out`."""
    if path.suffix.lower() != ".json":
        return False
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("kind") == SAVED_PLAN_KIND)
    except (OSError, ValueError, AttributeError):
        return False


def load_plan(path: Path) -> SavedPlan:
    """Read plan.json back; refuses files that are not plans of this schema version."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GitopsError(
            f"cannot read plan {path}: {exc}", "run `mlflow-gitops plan --out`"
        ) from None
    meta = {
        k: data.pop(k, None)
        for k in (
            "kind",
            "created_at",
            "tracking_uri",
            "file",
            "summary",
            "registry",
            "registry_name",
        )
    }
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise GitopsError(
            f"{path} is not a plan this version of mlflow-gitops can apply ({exc.error_count()} errors)",
            "run `mlflow-gitops plan --out` again",
        ) from None
    return SavedPlan(
        plan=plan,
        tracking_uri=meta["tracking_uri"],
        file=meta["file"],
        registry=meta["registry"],
        registry_name=meta["registry_name"],
    )


def saved_tree(saved: SavedPlan) -> LoadedTree | None:
    """The tree of the file a saved plan was made from (None: the file is gone, or the plan
    names none); a plan made against a named registry needs it for that registry's credentials."""
    if saved.file and Path(saved.file).exists():
        return load_tree(saved.file)
    if saved.registry_name not in (None, DEFAULT_REGISTRY):
        raise GitopsError(
            f"this plan was made against registry {saved.registry_name} of {saved.file}, which "
            "is gone: its URI and credentials are declared there; nothing was applied",
            "apply it from the repository it was planned in, or run `mlflow-gitops plan --out` "
            "again",
        )
    return None


def saved_registry(
    saved: SavedPlan, tree: LoadedTree | None, flag: str | None
) -> tuple[str, str, Credentials | None]:
    """The registry a saved plan applies to: its name, URI and credentials. A named registry
    of a tree (registries:) is resolved as planning resolves it, with its own credentials;
    otherwise the URI is saved_plan_uri's, with MLflow's variables. Either way refused when it
    is another registry than the plan's."""
    if tree is None or not tree.registries:
        return DEFAULT_REGISTRY, saved_plan_uri(saved, flag), None
    if not saved.registry or not saved.registry_name:
        raise GitopsError(
            f"this plan does not record which registry of {saved.file} it was made against (an "
            "older mlflow-gitops wrote it), so apply cannot tell whose credentials to use; "
            "nothing was applied",
            "run `mlflow-gitops plan --registry NAME --out` again",
        )
    uri, credentials = _resolve(tree, saved.registry_name, flag)
    _same_registry(saved.registry, uri)
    return saved.registry_name, uri, credentials


def saved_plan_uri(saved: SavedPlan, flag: str | None) -> str:
    """Where to apply a saved plan: --tracking-uri, MLFLOW_TRACKING_URI, or the URI the plan
    stored; never a default. Refused when that is another registry than the plan's."""
    if not saved.registry:
        raise GitopsError(
            "this plan does not record which registry it was made against (an older "
            "mlflow-gitops wrote it); nothing was applied",
            "run `mlflow-gitops plan --out` again",
        )
    try:
        uri = resolve_tracking_uri(flag, saved.tracking_uri, None, local_default=False)
    except NoTrackingUri:
        raise GitopsError(
            f"this plan was made against {saved.registry}, whose URI carried credentials and was "
            "not saved, and no tracking URI was given; nothing was applied",
            f"apply it with --tracking-uri {saved.registry} (or MLFLOW_TRACKING_URI), the "
            "credentials in MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or "
            "MLFLOW_TRACKING_TOKEN",
        ) from None
    _same_registry(saved.registry, uri)
    return uri


def _same_registry(identity: str, uri: str) -> None:
    given = registry_identity(uri)
    if given != identity:
        raise StalePlanError(
            f"this plan was made against {identity}, but the tracking URI points at "
            f"{given}; nothing was applied",
            "apply it to the registry it was made against, or run `mlflow-gitops plan --out` "
            "against this one",
        )


def check_fresh(
    saved: SavedPlan,
    registry: RegistryPort,
    evidence: Evidence | None,
    now: datetime,
    *,
    tree: LoadedTree | None = None,
) -> Planned:
    """Re-read the models the plan covers; refuse when any of them changed since (stale plan),
    or when a gate's inputs (data, gate spec, baseline) no longer give the recorded verdict:
    the gates run again per file of the plan's registry, as planning ran them. `tree`: the
    plan's file, already loaded."""
    observed = registry.read(list(saved.plan.observed))
    changed = sorted(m for m, d in saved.plan.observed.items() if observed.digest(m) != d)
    if changed:
        raise StalePlanError(
            f"the registry changed since this plan was made (models: {', '.join(changed)})",
            "run `mlflow-gitops plan --out` again and review the new plan; nothing was applied",
        )
    if saved.plan.gates and evidence is not None:
        if not saved.file or not Path(saved.file).exists():
            raise StalePlanError(
                "this plan has gate results but its registry file is gone",
                "run plan --out again from the repository",
            )
        tree = tree or load_tree(saved.file)
        name = saved.registry_name or DEFAULT_REGISTRY
        files = _files(tree, [m for m in tree.models_in(name) if m.name in saved.plan.observed])
        bare = saved.plan.model_copy(update={"gates": (), "notes": ()})
        plans = [(f, _only(bare, f.loaded.spec.models)) for f in files]
        identities = {name: saved.registry} if saved.registry else None
        again = _gate_files(plans, registry, observed, evidence, now, identities)
        if _verdicts(again) != _verdicts(saved.plan):
            raise StalePlanError(
                "gate inputs changed since this plan was made (data, gate spec or baseline)",
                "run `mlflow-gitops plan --out` again; nothing was applied",
            )
        return Planned(saved.plan.model_copy(update={"notes": again.notes}), observed)
    return Planned(saved.plan, observed)


def _only(plan: Plan, models: Collection[str]) -> Plan:
    """The part of a plan that concerns these models."""
    return plan.model_copy(
        update={
            "changes": tuple(c for c in plan.changes if c.model in models),
            "blocked": {k: v for k, v in plan.blocked.items() if k in models},
            "unmanaged": {k: v for k, v in plan.unmanaged.items() if k in models},
            "observed": {k: v for k, v in plan.observed.items() if k in models},
        }
    )


def _verdicts(plan: Plan) -> list[tuple[str, ...]]:
    return sorted((g.model, g.target, g.version, g.gate, g.verdict, g.inputs) for g in plan.gates)


# --- import --tree: the selected registries of a tree, read at once, as files -------------------


@dataclass(frozen=True)
class ImportTreeRequest:
    """What `import --tree` was given. `registries` and `models` (empty: all) restrict it;
    `out_dir` (default: `registries/` beside the root) must be inside the root's folder."""

    root: Path
    now: datetime
    registries: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    split: bool = False
    out_dir: Path | None = None
    tracking_uri: str | None = None
    aliases_from_stages: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ImportTreeOutcome:
    """The files to write (under `folder`), the notes to show first (a model the tree declares
    elsewhere is left to its file), and the include: patterns the root lacks for them (empty:
    it already includes them)."""

    files: tuple[TreeFile, ...]
    folder: Path
    notes: tuple[str, ...]
    missing_patterns: tuple[str, ...]


def import_tree(request: ImportTreeRequest) -> ImportTreeOutcome:
    """Read each selected registry once, all at once, each with its own credentials; leave the
    models the tree already declares in files import does not rewrite to those files."""
    tree = load_tree(request.root)
    names = list(request.registries) or list(tree.registry_names)
    if request.tracking_uri is not None and len(names) != 1:
        raise GitopsError(
            f"--tracking-uri names one registry, and {len(names)} are selected",
            "select one with --registry NAME, or set each registry's variable",
        )
    root = request.root
    folder = request.out_dir if request.out_dir is not None else root.parent / TREE_FOLDER
    if not folder.resolve().is_relative_to(root.resolve().parent):
        raise GitopsError(
            f"--out-dir {folder} is outside the folder of {root}",
            "include: patterns are relative to the root's folder: write the tree inside it",
        )

    def read_one(name: str) -> tuple[RegistryState, str]:
        uri, registry = connect_named(tree, name, request.tracking_uri)
        return registry.read(list(request.models) or None), redact(registry_identity(uri))

    read = dict(zip(names, _concurrently(read_one, names), strict=True))
    states = {name: state for name, (state, _) in read.items()}
    found = {m for state in states.values() for m in state.models}
    missing = sorted(set(request.models) - found)
    if missing:
        raise GitopsError(
            f"no registered model named {', '.join(map(repr, missing))} in {', '.join(names)}",
            "check the names (they are case-sensitive)",
        )
    elsewhere = declared_elsewhere(tree, tree_paths(states, folder, split=request.split))
    notes: list[str] = []
    for name, state in states.items():
        left = {m: w for m, w in elsewhere.get(name, {}).items() if m in state.models}
        notes += [f"{name}: {m} is declared at {w}; left there." for m, w in sorted(left.items())]
        states[name] = RegistryState({m: s for m, s in state.models.items() if m not in left})
    mapping = dict(request.aliases_from_stages) if request.aliases_from_stages else None
    files = tree_files(
        states,
        {name: identity for name, (_, identity) in read.items()},
        folder,
        request.now,
        split=request.split,
        aliases_from_stages=mapping,
    )
    patterns = include_patterns(root, tree.root.spec.include or [], [f.path for f in files])
    return ImportTreeOutcome(tuple(files), folder, tuple(notes), tuple(patterns))
