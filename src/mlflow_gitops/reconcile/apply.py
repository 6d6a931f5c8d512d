"""The `apply` use case: plan the tree (or check a saved plan fresh), check permissions, then
per registry take the apply lock, read the models again under it, open the audit run, let the
applier interpret the plan, finish the record and release the lock."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from mlflow_gitops.apply import Progress, apply, refuse
from mlflow_gitops.audit import AuditContext, from_environment
from mlflow_gitops.errors import GitopsError, LockError
from mlflow_gitops.gates.port import Evidence
from mlflow_gitops.outcome import ApplyOutcome, ApplyResult, RegistryResult, Step
from mlflow_gitops.permissions import Permission
from mlflow_gitops.plan.changes import Plan
from mlflow_gitops.plan.saved import (
    SavedPlan,
    check_unchanged,
    check_verdicts,
    gated_file,
    is_saved_plan,
    load_plan,
    only,
    saved_tree,
)
from mlflow_gitops.plan.tree import TreePlan
from mlflow_gitops.reconcile import connect
from mlflow_gitops.reconcile.permission import permission_asks, refusal
from mlflow_gitops.reconcile.plan import PlanOutcome, PlanRequest, ignore, plan_request
from mlflow_gitops.reconcile.planning import Opened, Planned, files_of, gate_files, tree_plan
from mlflow_gitops.record.run import RecordedChange, RecordFinish, RecordStart
from mlflow_gitops.registry.port import RegistryPort
from mlflow_gitops.render.common import step_text
from mlflow_gitops.spec.model import DEFAULT_REGISTRY
from mlflow_gitops.spec.tree import LoadedTree, load_tree

AUDIT_RECORD = "(audit record)"
APPLY_LOCK = "(apply lock)"


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
    judge: Callable[[TreePlan], TreePlan] | None = None


def apply_request(
    request: ApplyRequest,
    progress: Callable[[str], None] = ignore,
    on_plan: Callable[[PlanOutcome], None] = ignore,
) -> ApplyOutcome:
    """Plan the tree (or check a saved plan fresh), then apply it registry by registry, in
    declared order; a registry that fails stops the ones after it. `on_plan` is told the plan
    before anything is written, so the plan is shown even when the apply is refused."""
    if is_saved_plan(request.target):
        outcome = _fresh_saved(request)
    else:
        plan = PlanRequest(
            request.target,
            request.tracking_uri,
            request.clock(),
            registries=request.registries,
            models=request.models,
        )
        outcome = plan_request(plan, progress)
    if request.judge is not None:
        outcome = _judged(outcome, request.judge(outcome.tree))
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


def _judged(outcome: PlanOutcome, tree: TreePlan) -> PlanOutcome:
    """The outcome with each registry's plan as the judged tree has it (models blocked)."""
    plans = {r.registry: r.plan for r in tree.registries}
    opened = tuple(
        replace(o, planned=replace(o.planned, plan=plans.get(o.name, o.planned.plan)))
        for o in outcome.opened
    )
    return replace(outcome, opened=opened, tree=tree)


def _fresh_saved(request: ApplyRequest) -> PlanOutcome:
    """A saved plan, checked against its registry: the same registry, unchanged since."""
    if request.registries or request.models:
        raise GitopsError(
            "--registry and --model select part of a tree to plan; a saved plan applies "
            "as it was saved",
            "drop them, or run `plan --out` with them",
        )
    saved = load_plan(request.target)
    tree = saved_tree(saved)
    name, where = connect.saved_registry(saved, tree, request.tracking_uri)
    registry = connect.open_with(where)
    folder = Path(saved.file).resolve().parent if saved.file else Path.cwd()
    evidence = connect.open_evidence(where, {name: where})
    planned = check_fresh(saved, registry, evidence, request.clock(), tree=tree)
    opened = Opened(name, where.registry_uri, registry, planned, where.tracking_uri)
    return PlanOutcome((opened,), tree_plan([opened], {}, tree=tree), folder)


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
    check_unchanged(saved, observed)
    if not saved.plan.gates or evidence is None:
        return Planned(saved.plan, observed)
    tree = tree or load_tree(gated_file(saved))
    name = saved.registry_name or DEFAULT_REGISTRY
    files = files_of(tree, [m for m in tree.models_in(name) if m.name in saved.plan.observed])
    bare = saved.plan.model_copy(update={"gates": (), "notes": ()})
    plans = [(f, only(bare, f.loaded.spec.models)) for f in files]
    identities = {name: saved.registry} if saved.registry else None
    again = gate_files(plans, registry, observed, evidence, now, identities)
    check_verdicts(saved.plan, again)
    return Planned(saved.plan.model_copy(update={"notes": again.notes}), observed)


def check_permissions(plan: Plan, registry: RegistryPort) -> None:
    """Refuse the whole apply, before the lock and any write, when the user lacks a permission a
    planned change needs (servers with authentication); the port is asked, the policy decides."""
    held: dict[tuple[str, Permission], bool] = {}
    for model, permission in permission_asks(plan):
        held[(model, permission)] = registry.can(model, permission)
    writes = any(plan.changes_for(m) for m in plan.models if m not in plan.blocked)
    refused = refusal(
        plan,
        held,
        not writes or registry.can_record(),
        registry.user,
        experiment=registry.audit_experiment,
    )
    if refused is not None:
        raise refused


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
    it may not; `checked`: the caller did). The apply holds the registry's apply lock (one apply
    at a time) and first reads the models again in one batch: a model that changed since the
    plan is refused. `sources`: the registries copies come from."""
    plan = planned.plan
    if not checked:
        check_permissions(plan, registry)
    runnable = [m for m in plan.models if m not in plan.blocked]
    stack = ExitStack()
    try:
        stack.enter_context(
            registry.lock(f"{audit.describe() or 'mlflow-gitops'}, {now:%Y-%m-%d %H:%M:%S}")
        )
        # under the lock, one batched read tells which models changed since the plan: another
        # apply or a person wrote them; those are refused rather than mixed with this revision
        state = registry.read([m for m in runnable if m in plan.observed])
        fresh = {m: state.digest(m) for m in runnable if m in plan.observed}
    except LockError:
        stack.close()
        raise  # nothing was applied; the error says who holds the lock and what to do
    except GitopsError as exc:
        return ApplyResult(steps=refuse(plan, exc.message) + _release(stack))
    try:
        # the durable record opens before the first change: an apply that cannot record (no
        # permission on the audit experiment, say) changes nothing
        touching = tuple(m for m in runnable if fresh.get(m, "") in ("", plan.observed.get(m)))
        record = registry.start_record(RecordStart(audit, now, touching)) if touching else None
    except GitopsError as exc:
        why = f"cannot write the audit record, so nothing was applied: {exc.message}"
        return ApplyResult(steps=refuse(plan, why) + _release(stack))
    try:
        applied = apply(
            plan,
            planned.observed,
            registry,
            audit,
            now,
            parallelism=parallelism,
            progress=progress,
            sources=sources,
            fresh=fresh,
            record=record,
        )
        steps = applied.steps
        if record is not None:
            steps += _finish_record(registry, record, plan, steps, applied.recorded)
    except BaseException:
        with suppress(GitopsError):  # the first failure is the one to report
            stack.close()
        raise
    return ApplyResult(
        steps=steps + _release(stack), record=record, experiment=registry.audit_experiment
    )


def _release(stack: ExitStack) -> tuple[Step, ...]:
    """Drop the apply lock. One that cannot be deleted is a failed step beside the results, which
    stand: it says whose lease will break it and when."""
    try:
        stack.close()
    except GitopsError as exc:
        detail = f"{exc.message}; {exc.hint}" if exc.hint else exc.message
        return (Step(APPLY_LOCK, "release the apply lock", "failed", detail),)
    return ()


def _finish_record(
    registry: RegistryPort,
    record: str,
    plan: Plan,
    steps: tuple[Step, ...],
    recorded: dict[str, tuple[RecordedChange, ...]],
) -> tuple[Step, ...]:
    """Write the results into the audit run; when that fails, a failed step that says what the
    registry holds now (the steps marked applied) and what the record lacks."""
    finish = RecordFinish(
        ok=all(s.status in ("applied", "blocked") for s in steps),
        changes=recorded,
        steps=tuple(
            {"model": s.model, "change": step_text(s), "status": s.status, "detail": s.detail}
            for s in steps
        ),
        gates=tuple(g.model_dump(mode="json") for g in plan.gates),
    )
    try:
        registry.finish_record(record, finish)
    except GitopsError as exc:
        applied = sum(1 for s in steps if s.status == "applied")
        return (
            Step(
                AUDIT_RECORD,
                f"finish audit run {record} in experiment {registry.audit_experiment}",
                "failed",
                f"{exc.message}; the {applied} change(s) marked applied above are in the registry "
                "and annotated on their versions, but the audit run does not list them",
            ),
        )
    return ()


def _merged(results: Sequence[RegistryResult]) -> ApplyResult | None:
    done = [r.result for r in results if r.result is not None]
    if not done:
        return None
    return ApplyResult(steps=tuple(s for r in done for s in r.steps))
