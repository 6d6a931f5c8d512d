"""One registry's plan, over the files that declare its models: read once, plan each file with
its own defaults, check that runs to register exist, run the gates and write their records."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from mlflow_gitops.errors import PermissionDenied, RegistryError, SpecError, SpecIssue
from mlflow_gitops.gates.cache import not_recorded
from mlflow_gitops.gates.port import Evidence
from mlflow_gitops.gates.run import GateRun, run_gates
from mlflow_gitops.observed import RegistryState
from mlflow_gitops.plan.changes import CopyVersion, Plan, RegisterVersion
from mlflow_gitops.plan.planner import history_drifted
from mlflow_gitops.plan.planner import plan as compute_plan
from mlflow_gitops.plan.tree import RegistryPlan, TreePlan
from mlflow_gitops.plan.webhooks import declaring_file
from mlflow_gitops.record import SourceRef
from mlflow_gitops.registry.copy import copied_elsewhere, find_copies, leftovers
from mlflow_gitops.registry.port import RegistryPort
from mlflow_gitops.registry.webhooks import observe_webhooks
from mlflow_gitops.secrets import redact
from mlflow_gitops.settings import registry_identity
from mlflow_gitops.spec.located import LoadedSpec, format_loc, locate
from mlflow_gitops.spec.model import DEFAULT_REGISTRY
from mlflow_gitops.spec.tree import DeclaredModel, LoadedTree, ModelKey


@dataclass(frozen=True)
class Planned:
    """A plan and the registry state it was computed from."""

    plan: Plan
    observed: RegistryState


@dataclass(frozen=True)
class PlanFile:
    """A file whose models one registry plan covers, and the name errors give it."""

    loaded: LoadedSpec
    shown: str


@dataclass(frozen=True)
class Opened:
    """One selected registry of the tree: where it is, its adapter, and its plan."""

    name: str
    uri: str  # where its models live (the registry URI)
    registry: RegistryPort
    planned: Planned
    tracking_uri: str = ""  # its runs, lock and audit record ("": the registry URI)


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
    source_run: SourceRun | None = None,
) -> Planned:
    """make_plan over the files of one registry (a tree's): one read of all their models, each
    file planned with its own defaults, one Plan. `name` is the registry's name in the tree and
    `identities` every registry's identity by name (copies are matched by provenance), and
    `source_run` asks a source registry for a version's run id (match_copies)."""
    observed = registry.read([m for f in files for m in f.loaded.spec.models])
    # the server's webhooks, when a file declares webhooks: (a located error on a server without)
    observed = observe_webhooks(observed, [(f.loaded, f.shown) for f in files], registry.webhooks)
    # the audit record is read only for models whose history block was removed or edited
    drifted = history_drifted(observed)
    records = registry.read_records(drifted) if drifted else {}
    plans: list[tuple[PlanFile, Plan]] = []
    issues: list[SpecIssue] = []
    copies = match_copies(files, observed, name, identities or {}, source_run)
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
    return Planned(gate_files(plans, registry, observed, evidence, now, identities), observed)


def gate_files(
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


# (source registry name, model, version) -> the run id of that version, as its registry tells it
SourceRun = Callable[[str, str, int], str | None]


def match_copies(
    files: Sequence[PlanFile],
    observed: RegistryState,
    registry: str,
    identities: Mapping[str, str],
    source_run: SourceRun | None = None,
) -> dict[tuple[str, str], int]:
    """The live version each copy_from entry was copied into, by (model, entry key): the
    version whose provenance tags name the entry's source registry (by identity), model and
    version; failing that, when a version records a copy of that model and version from
    another registry identity (the same server reached under another host name), the source
    is asked for the version's run id (`source_run`) and a version whose provenance records
    that run matches (registry/copy.find_copies). An entry whose registry has no identity here
    matches nothing."""
    found: dict[tuple[str, str], int] = {}
    for f in files:
        for model, spec in f.loaded.spec.models.items():
            state = observed.models.get(model)
            for entry in spec.versions:
                if entry.copy_from is None:
                    continue
                source = entry.copy_from.in_registry(registry)
                origin = source.registry or registry
                identity = identities.get(origin)
                if identity is None:
                    continue
                ref = SourceRef(identity, source.model, source.version)
                number = find_copies(state, [ref]).get(ref)
                if number is None and source_run is not None and copied_elsewhere(state, ref):
                    run = source_run(origin, source.model, source.version)
                    if run:
                        number = find_copies(state, [ref], {ref: run}).get(ref)
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
    """Every run to register exists, and its model is one this registry accepts (Unity Catalog:
    a signature), each problem at its entry's `run:` line, before anything is applied."""
    loaded = file.loaded
    new = [c for c in plan.changes if isinstance(c, RegisterVersion) and c.run_id]
    missing = registry.missing_runs(sorted({c.run_id for c in new if c.run_id}))
    refused = {} if missing else registry.refused_registrations(sorted({c.source for c in new}))
    issues = []
    for change in new:
        if change.run_id in missing:
            problem = f"run {change.run_id} does not exist in the tracking server"
            hint = "check the run id (mlflow-gitops propose lists the best runs)"
        elif change.source in refused:
            path = change.source.removeprefix(f"runs:/{change.run_id}").strip("/") or "model"
            problem = (
                f"{change.model} is in Unity Catalog, which refuses to register run "
                f"{change.run_id}'s model at '{path}': {refused[change.source]}"
            )
            hint = (
                "UC registers only models logged with a signature (inputs and outputs): log it "
                "again with `input_example=` or `signature=infer_signature(X, model.predict(X))` "
                "and point this entry at the new run"
            )
        else:
            continue
        model = loaded.spec.models[change.model]
        index = next(i for i, v in enumerate(model.versions) if v.key == change.entry)
        loc = ("models", change.model, "versions", index, "run")
        _, pos = locate(loc, loaded.positions)
        issues.append(SpecIssue(file.shown, pos.line, pos.column, format_loc(loc), problem, hint))
    if issues:
        raise SpecError(issues)


def files_of(tree: LoadedTree, models: Sequence[DeclaredModel]) -> list[PlanFile]:
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


def concurrently(fn: Callable[[str], _T], names: list[str]) -> list[_T]:
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


def check_sources(
    tree: LoadedTree,
    copies: Sequence[tuple[str, CopyVersion]],
    opened: Mapping[str, RegistryPort],
    observed: Mapping[str, RegistryState] | None = None,
) -> dict[str, tuple[str, ...]]:
    """Every version about to be copied exists, its files can be read and, when the destination
    registers only models with a signature (Unity Catalog), its model has one: asked of its own
    registry before anything is applied; each problem located at its copy_from. Returns, by
    destination registry, the notes that say what each copy will do with the runs an
    interrupted apply left there (`observed`: the destination's read state)."""
    issues = []
    notes: dict[str, list[str]] = {}
    for registry, change in copies:
        found = opened[change.source_registry].describe_source(
            change.source_model, change.source_version
        )
        dest = opened[registry]
        problem, hint = (
            found.problem,
            (
                "fix the copy_from entry (registry:model/version), or make the source version "
                "readable; nothing was applied"
            ),
        )
        if found.ok and found.unsigned and dest.requires_signature:
            problem = (
                f"registry '{registry}' is in Unity Catalog, which registers only models with a "
                f"signature (inputs and outputs), and the model {found.where()} at "
                f"{found.ref.registry} cannot be registered there: {found.unsigned}"
            )
            hint = (
                "log the model with a signature (signature=infer_signature(X, model.predict(X))), "
                "register it in the source registry and copy that version; nothing was applied"
            )
        if not problem:
            state = (observed or {}).get(registry, RegistryState()).models.get(change.model)
            used = {v.run_id for v in state.versions if v.run_id} if state else set()
            try:
                left = leftovers(dest.copy_runs(found.ref, found.run_id), used)
            except PermissionDenied as exc:  # apply needs more; the plan goes on without it
                notes.setdefault(registry, []).append(
                    f"{change.model}: {change.text()}: cannot look for a run an interrupted "
                    f"apply left ({exc.message})"
                )
                continue
            if left.reuse is not None or left.remove:
                notes.setdefault(registry, []).append(
                    f"{change.model}: {change.text()} {left.sentence(done=False)}"
                )
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
                f"cannot {change.text()}: {problem}",
                hint,
            )
        )
    if issues:
        raise SpecError(issues)
    return {k: tuple(v) for k, v in notes.items()}


def tree_plan(
    done: Sequence[Opened],
    chosen: Mapping[str, Sequence[DeclaredModel]],
    selected: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
    tree: LoadedTree | None = None,
) -> TreePlan:
    """The TreePlan every renderer takes: each registry's plan, its identity, the URI it was
    given (masked) and the file of each model (and of the webhooks, from `tree`)."""
    registries = tuple(
        RegistryPlan(
            registry=o.name,
            identity=registry_identity(o.uri),
            uri=redact(o.uri),
            plan=o.planned.plan,
            files={m.name: m.file.name for m in chosen.get(o.name, ())}
            | declaring_file(tree, o.name, o.planned.plan),
        )
        for o in done
    )
    return TreePlan(
        registries=registries, selected_registries=selected[0], selected_models=selected[1]
    )
