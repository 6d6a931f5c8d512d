"""The one orchestration module: read, plan, check, apply, in that order."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
from mlflow_gitops.observed import RegistryState
from mlflow_gitops.outcome import ApplyResult
from mlflow_gitops.permissions import WHAT_NEEDS, current_user, needed
from mlflow_gitops.plan.changes import CreateModel, Plan, RegisterVersion
from mlflow_gitops.plan.planner import history_drifted
from mlflow_gitops.plan.planner import plan as compute_plan
from mlflow_gitops.record import AUDIT_EXPERIMENT
from mlflow_gitops.registry.port import RegistryPort
from mlflow_gitops.render.common import describe
from mlflow_gitops.render.json import plan_document
from mlflow_gitops.secrets import redact
from mlflow_gitops.settings import NoTrackingUri, registry_identity, resolve_tracking_uri
from mlflow_gitops.spec.load import LoadedSpec, format_loc, load, locate

SAVED_PLAN_KIND = "mlflow-gitops-plan"


@dataclass(frozen=True)
class Planned:
    """A plan and the registry state it was computed from."""

    plan: Plan
    observed: RegistryState


def open_registry(uri: str) -> RegistryPort:
    """The MLflow adapter; imported here so that validate, schema and --help never load mlflow."""
    from mlflow_gitops.registry.client import MlflowRegistry

    return MlflowRegistry(uri)


def open_evidence(uri: str) -> Evidence:
    """Gate evidence through MLflow, connected only when a gate first needs it."""
    return _LazyEvidence(uri)


class _LazyEvidence:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._real: Evidence | None = None

    @property
    def real(self) -> Evidence:
        if self._real is None:
            from mlflow_gitops.gates.evidence import MlflowEvidence

            self._real = MlflowEvidence(self.uri)
        return self._real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def make_plan(
    loaded: LoadedSpec,
    registry: RegistryPort,
    evidence: Evidence | None = None,
    now: datetime | None = None,
) -> Planned:
    """Read the managed models once, plan, check that runs to register exist, run the gates.
    `now` is the one clock of the plan: the soak-time policy and the gates both measure by it."""
    now = now or datetime.now(UTC)
    observed = registry.read(list(loaded.spec.models))
    # the audit record is read only for models whose history block was removed or edited
    drifted = history_drifted(observed)
    records = registry.read_records(drifted) if drifted else {}
    plan = compute_plan(loaded, observed, now, records=records)
    _check_runs(plan, loaded, registry)
    if evidence is not None:
        plan = _record_gates(registry, run_gates(loaded, plan, observed, evidence, now))
    return Planned(plan, observed)


def _record_gates(registry: RegistryPort, run: GateRun) -> Plan:
    """Write the gate records the run asks for; the plan says which could not be written."""
    notes = []
    for record in run.records:
        try:
            registry.set_version_tag(record.model, record.version, record.key, record.value)
        except RegistryError as exc:
            notes.append(not_recorded(record, exc.message))
    return run.plan.model_copy(update={"notes": (*run.plan.notes, *notes)}) if notes else run.plan


def _check_runs(plan: Plan, loaded: LoadedSpec, registry: RegistryPort) -> None:
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
                str(loaded.path),
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
) -> ApplyResult:
    """Apply a plan that was just computed (or checked fresh) against this registry, after
    checking that this user may make every change (nothing is written, not even the lock, when
    it may not)."""
    check_permissions(planned.plan, registry)
    return apply(
        planned.plan,
        planned.observed,
        registry,
        audit,
        now,
        parallelism=parallelism,
        progress=progress,
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
            f"{DENIED}: {current_user()} lacks permissions this plan needs; nothing was "
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
    """What `plan` (or `comment`) was given. `now` is the clock of the whole command."""

    file: Path
    tracking_uri: str | None
    now: datetime
    out: Path | None = None  # also save the plan here, for `apply PLAN`
    local_default: bool = True  # False: never sqlite:///mlflow.db (pull-request comments)


@dataclass(frozen=True)
class PlanOutcome:
    """The plan, the registry it was made against, and the folder of its file."""

    planned: Planned
    uri: str
    folder: Path

    @property
    def plan(self) -> Plan:
        return self.planned.plan


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


@dataclass(frozen=True)
class ApplyOutcome:
    """The plan that was applied, where, and the result (None: the plan was empty)."""

    plan: Plan
    uri: str
    result: ApplyResult | None

    @property
    def ok(self) -> bool:
        return self.result is None or self.result.ok


def plan_request(request: PlanRequest, progress: Callable[[str], None] = _ignore) -> PlanOutcome:
    """Load the file, find its registry, plan and gate; save the plan when asked."""
    outcome, _ = _plan_file(request, progress)
    return outcome


def apply_request(
    request: ApplyRequest,
    progress: Callable[[str], None] = _ignore,
    on_plan: Callable[[PlanOutcome], None] = _ignore,
) -> ApplyOutcome:
    """Plan the file (or check a saved plan fresh), then apply it. `on_plan` is told the plan
    before anything is written, so the plan is shown even when the apply is refused."""
    if is_saved_plan(request.target):
        saved = load_plan(request.target)
        uri = saved_plan_uri(saved, request.tracking_uri)  # its own registry, never a default
        registry = open_registry(uri)
        folder = Path(saved.file).resolve().parent if saved.file else Path.cwd()
        planned = check_fresh(saved, registry, open_evidence(uri), request.clock())
        outcome = PlanOutcome(planned, uri, folder)
    else:
        outcome, registry = _plan_file(
            PlanRequest(request.target, request.tracking_uri, request.clock()), progress
        )
    on_plan(outcome)
    if outcome.plan.is_empty:
        return ApplyOutcome(outcome.plan, outcome.uri, None)
    audit = from_environment(
        cwd=outcome.folder, commit=request.commit, actor=request.actor, pr=request.pr
    )
    # SQLite serialises writers; parallel writes only add lock contention
    parallelism = 1 if outcome.uri.startswith("sqlite:") else request.parallelism
    result = apply_plan(
        outcome.planned,
        registry,
        audit,
        request.clock(),
        parallelism=parallelism,
        progress=lambda model, done, total: progress(f"applied {done}/{total} models ({model})"),
    )
    return ApplyOutcome(outcome.plan, outcome.uri, result)


def _plan_file(
    request: PlanRequest, progress: Callable[[str], None]
) -> tuple[PlanOutcome, RegistryPort]:
    loaded = load(request.file)
    uri = resolve_tracking_uri(
        request.tracking_uri,
        loaded.spec.tracking_uri,
        loaded.folder,
        local_default=request.local_default,
    )
    registry = open_registry(uri)
    progress(f"reading {len(loaded.spec.models)} models from {uri} and running gates ...")
    planned = make_plan(loaded, registry, open_evidence(uri), request.now)
    if request.out is not None:
        save_plan(planned.plan, request.out, uri, request.file, request.now)
    return PlanOutcome(planned, uri, loaded.folder), registry


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


def save_plan(plan: Plan, path: Path, tracking_uri: str, file: Path, now: datetime) -> None:
    """Write plan.json: the changes and a fingerprint of every model it read."""
    safe_uri = tracking_uri if redact(tracking_uri) == tracking_uri else None
    doc = plan_document(
        plan,
        kind=SAVED_PLAN_KIND,
        created_at=now.isoformat(timespec="seconds"),
        tracking_uri=safe_uri,
        file=str(file),
    )
    doc["registry"] = registry_identity(tracking_uri)  # never credentials; apply checks it
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
        for k in ("kind", "created_at", "tracking_uri", "file", "summary", "registry")
    }
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise GitopsError(
            f"{path} is not a plan this version of mlflow-gitops can apply ({exc.error_count()} errors)",
            "run `mlflow-gitops plan --out` again",
        ) from None
    return SavedPlan(
        plan=plan, tracking_uri=meta["tracking_uri"], file=meta["file"], registry=meta["registry"]
    )


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
    given = registry_identity(uri)
    if given != saved.registry:
        raise StalePlanError(
            f"this plan was made against {saved.registry}, but the tracking URI points at "
            f"{given}; nothing was applied",
            "apply it to the registry it was made against, or run `mlflow-gitops plan --out` "
            "against this one",
        )
    return uri


def check_fresh(
    saved: SavedPlan,
    registry: RegistryPort,
    evidence: Evidence | None = None,
    now: datetime | None = None,
) -> Planned:
    """Re-read the models the plan covers; refuse when any of them changed since (stale plan),
    or when a gate's inputs (data, gate spec, baseline) no longer give the recorded verdict."""
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
        loaded = load(saved.file)
        bare = saved.plan.model_copy(update={"gates": (), "notes": ()})
        again = _record_gates(
            registry, run_gates(loaded, bare, observed, evidence, now or datetime.now(UTC))
        )
        if _verdicts(again) != _verdicts(saved.plan):
            raise StalePlanError(
                "gate inputs changed since this plan was made (data, gate spec or baseline)",
                "run `mlflow-gitops plan --out` again; nothing was applied",
            )
        return Planned(saved.plan.model_copy(update={"notes": again.notes}), observed)
    return Planned(saved.plan, observed)


def _verdicts(plan: Plan) -> list[tuple[str, ...]]:
    return sorted((g.model, g.target, g.version, g.gate, g.verdict, g.inputs) for g in plan.gates)
