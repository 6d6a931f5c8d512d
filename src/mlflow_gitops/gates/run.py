"""Run the gates of every planned change that makes a version enter a gated stage or alias.

The runner asks the evidence port (MLflow, or a fake in the unit tests) only for what a verdict
needs; choosing targets and baselines, the cache, the thresholds and the messages are pure
(`select`, `cache`, `judge`). It writes nothing: the results to cache on the candidate versions
come back as `GateRecord`s, and the orchestrator writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from mlflow_gitops.gates import judge
from mlflow_gitops.gates.cache import (
    GateRecord,
    cached_results,
    gate_record,
    not_recorded,
    oversize,
)
from mlflow_gitops.gates.judge import Observed
from mlflow_gitops.gates.port import Evaluation, Evidence, GateError, Side
from mlflow_gitops.gates.reuse import Need, Scored, score
from mlflow_gitops.gates.select import (
    Candidate,
    baseline,
    data_of,
    first_evaluate,
    gated,
    hooks_of,
    inputs_key,
    was_holder,
)
from mlflow_gitops.observed import ModelState, RegistryState, VersionState
from mlflow_gitops.plan.changes import Plan
from mlflow_gitops.plan.gates import GateResult, Reused
from mlflow_gitops.spec.located import LoadedSpec
from mlflow_gitops.spec.model import (
    EvaluateGate,
    EvaluateSpec,
    Gate,
    GateSet,
    LatencyGate,
    MetricGate,
    RequireSignatureGate,
    RequireTagsGate,
    SizeGate,
)


@dataclass(frozen=True)
class GateRun:
    """The plan with gate results (models whose gates failed blocked, a note for each record too
    large for a tag), and the gate records the orchestrator should write so that the next plan
    with the same inputs reuses them."""

    plan: Plan
    records: tuple[GateRecord, ...] = ()


def run_gates(
    loaded: LoadedSpec,
    plan: Plan,
    observed: RegistryState,
    evidence: Evidence,
    now: datetime,
    identities: Mapping[str, str] | None = None,
) -> GateRun:
    """Gate every gated change of the plan; `now` dates the records. A candidate not copied yet
    is its source version, read from the source registry (`identities`: each registry's identity
    by name, so its verdict names the source), against this registry's holder; nothing is
    recorded for it (no version carries it yet), and once copied, the copy is evaluated anew."""
    results: list[GateResult] = []
    records: list[GateRecord] = []
    notes: list[str] = []
    blocked = {m: list(r) for m, r in plan.blocked.items()}
    for candidate, gate_set in gated(loaded, plan, observed):
        live = observed.models.get(candidate.model) or ModelState(name=candidate.model)
        gate_results, record, scores = _run_set(
            loaded, candidate, gate_set, live, evidence, now, identities or {}
        )
        results.extend(gate_results)
        if record is not None and (too_large := oversize(record)):
            notes.append(not_recorded(record, too_large))  # the verdicts stand, uncached
        elif record is not None:
            records.append(record)
        records.extend(s for s in scores if s not in records)
        for r in gate_results:
            if not r.passed:
                blocked.setdefault(candidate.model, []).append(
                    f"gate {r.gate} for {r.target} failed on {r.version}: {r.message}"
                )
    gated_plan = plan.model_copy(
        update={
            "gates": tuple(results),
            "blocked": {m: tuple(r) for m, r in sorted(blocked.items())},
            "notes": (*plan.notes, *notes),
        }
    )
    return GateRun(gated_plan, tuple(records))


def _run_set(
    loaded: LoadedSpec,
    candidate: Candidate,
    gate_set: GateSet,
    live: ModelState,
    evidence: Evidence,
    now: datetime,
    identities: Mapping[str, str],
) -> tuple[list[GateResult], GateRecord | None, list[GateRecord]]:
    """One target's gates on one candidate: skipped, cached, or evaluated (and to be recorded,
    with the scores of each version the evaluation scored)."""
    if gate_set.on_rollback == "skip" and was_holder(candidate.version, candidate.target):
        return [judge.rollback_skipped(candidate)], None, []
    if candidate.version is None and not candidate.side.uri.startswith(("runs:/", "models:/")):
        # gates unpickle models: only through the configured registry and its runs, never from
        # an arbitrary location named in the file
        untrusted = GateError(
            f"the gates load models only through the configured registry; {candidate.side.uri} "
            "is not registered yet",
            "register the version first (without a gated stage), then promote it in a second change",
        )
        return [judge.error(candidate, "evaluate", untrusted, None)], None, []
    base = baseline(live, candidate, gate_set)
    try:
        digests = {d: evidence.data_digest(d, loaded.folder) for d in data_of(gate_set)}
        hooks = {h: evidence.hook_digest(h, loaded.folder) for h in hooks_of(gate_set)}
    except GateError as exc:
        return [judge.error(candidate, "evaluate", exc, base)], None, []
    inputs = inputs_key(candidate, gate_set, base, digests, identities, hooks)
    if candidate.version is not None:
        cached = cached_results(candidate.version.tags, candidate.target, inputs)
        if cached is not None:
            return list(cached), None, []
    context = _Context(loaded, candidate, base, digests, hooks, evidence, now)
    results = []
    for gate in gate_set.checks:
        try:
            seen, reused = _observe(context, gate, gate_set)
            result = judge.result(candidate, gate, judge.checks(candidate, gate, seen), base)
            result = result.model_copy(update={"reused": reused})
        except GateError as exc:
            result = judge.error(candidate, judge.kind(gate), exc, base)
        results.append(result.model_copy(update={"inputs": inputs}))
    scores = [r for s in context.scored.values() for r in s.records]
    if candidate.version is None:
        return results, None, scores  # registered or copied by this plan: no gate tag yet
    number = candidate.version.version
    record = gate_record(candidate.model, number, candidate.target, inputs, results, now)
    return results, record, scores


@dataclass
class _Context:
    """What one candidate's gates share: its baseline, the data's and hooks' identities, and
    the evaluations made so far (the latency gate reuses the evaluate gate's pass)."""

    loaded: LoadedSpec
    candidate: Candidate
    base: VersionState | None
    digests: Mapping[str, str]
    hooks: Mapping[str, str]
    evidence: Evidence
    now: datetime
    scored: dict[tuple[str, int], Scored] = field(default_factory=dict)

    def evaluate(
        self, spec: EvaluateSpec, latency_rows: int | None
    ) -> tuple[Evaluation, tuple[Reused, ...]]:
        """The evaluation of `spec`, reading recorded scores where they are still valid."""
        key = (spec.model_dump_json(), latency_rows or 0)
        if key not in self.scored:
            base = self.base
            self.scored[key] = score(
                Need(
                    model=self.candidate.model,
                    spec=spec,
                    data=self.digests[spec.data],
                    hook=self.hooks.get(spec.prepare or "", ""),
                    candidate=self.candidate.side,
                    # a copy's source lives in another registry: nothing of it is recorded here
                    candidate_version=self.candidate.version
                    if self.candidate.side.registry is None
                    else None,
                    baseline=Side(f"models:/{self.candidate.model}/{base.version}", base.run_id)
                    if base
                    else None,
                    baseline_version=base,
                    latency_rows=latency_rows or 0,
                ),
                self.evidence,
                self.loaded.folder,
                self.now,
            )
        found = self.scored[key]
        return found.evaluation, found.reused


def _observe(
    context: _Context, gate: Gate, gate_set: GateSet
) -> tuple[Observed, tuple[Reused, ...]]:
    """Ask the evidence for what this gate's verdict needs, and nothing more; the recorded
    scores it read instead of scoring a side again."""
    evidence, side = context.evidence, context.candidate.side
    match gate:
        case MetricGate(metric=metric):
            return Observed(metric=evidence.run_metric(side, metric)), ()
        case EvaluateGate(evaluate=spec):
            # with a latency gate in the set, one pass over the data serves both gates
            latency = next((g.latency for g in gate_set.checks if isinstance(g, LatencyGate)), None)
            rows = latency.batch_rows if latency and first_evaluate(gate_set) == spec else None
            evaluation, reused = context.evaluate(spec, rows)
            return Observed(evaluation=evaluation), reused
        case SizeGate():
            return Observed(size_mb=evidence.model_size_mb(side)), ()
        case LatencyGate(latency=spec):
            evaluate = first_evaluate(gate_set)
            if evaluate is None:
                raise GateError(
                    "the latency gate times predict on the evaluate gate's data; add an evaluate gate"
                )
            evaluation, reused = context.evaluate(evaluate, spec.batch_rows)
            return Observed(evaluation=evaluation), reused
        case RequireTagsGate():
            return Observed(), ()
        case RequireSignatureGate(require_signature=required):
            return Observed(signature=evidence.has_signature(side) if required else None), ()
        case _:
            assert_never(gate)
