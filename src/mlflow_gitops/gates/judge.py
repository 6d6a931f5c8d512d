"""From what the evidence said to a gate result: checks against the thresholds, the verdict and
its message. Pure: no registry, no MLflow, no clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

from mlflow_gitops.gates.port import Evaluation, GateError
from mlflow_gitops.gates.select import Candidate
from mlflow_gitops.gates.verdict import Judged, bound_check, compare, decide, plain
from mlflow_gitops.observed import VersionState
from mlflow_gitops.plan.gates import Check, GateResult
from mlflow_gitops.spec.model import (
    EvaluateGate,
    Gate,
    LatencyGate,
    MetricGate,
    RequireSignatureGate,
    RequireTagsGate,
    SizeGate,
)


@dataclass(frozen=True)
class Observed:
    """What the evidence said for one gate (only the field its kind reads is set)."""

    metric: float | None = None
    evaluation: Evaluation | None = None
    size_mb: float | None = None
    signature: bool | None = None  # None: not asked (require_signature: false)


def kind(gate: Gate) -> str:
    """The gate's name as the file spells it."""
    match gate:
        case MetricGate():
            return "metric"
        case EvaluateGate():
            return "evaluate"
        case SizeGate():
            return "max_size_mb"
        case LatencyGate():
            return "latency"
        case RequireTagsGate():
            return "require_tags"
        case RequireSignatureGate():
            return "require_signature"
        case _:
            assert_never(gate)


def checks(candidate: Candidate, gate: Gate, seen: Observed) -> list[Judged]:
    """Every check of one gate, with what the message says if it fails; GateError when the
    evidence cannot decide it."""
    match gate:
        case MetricGate(metric=metric, max=maximum, min=minimum):
            if seen.metric is None:
                raise GateError(
                    f"run {candidate.side.run_id} never logged the metric {metric!r}",
                    "log it with the run, or change the gate",
                )
            return [bound_check(metric, seen.metric, maximum=maximum, minimum=minimum)]
        case EvaluateGate(evaluate=spec):
            result = _evaluation(seen)
            out = []
            for name, threshold in spec.metrics.items():
                base_value = result.baseline.get(name) if result.baseline else None
                out.extend(
                    compare(
                        name,
                        threshold,
                        result.candidate.get(name),
                        base_value,
                        spec.on_missing_baseline,
                    )
                )
            rows = float(result.rows)
            out.append(plain(Check(name="rows", candidate=rows, bound="evaluated", verdict="pass")))
            return out
        case SizeGate(max_size_mb=size_limit):
            return [bound_check("size_mb", seen.size_mb, maximum=size_limit)]
        case LatencyGate(latency=spec):
            lat = _evaluation(seen).latency_ms
            timed = []
            for q, limit in (("p50", spec.p50_ms), ("p95", spec.p95_ms)):
                measured = lat.get(f"candidate_{q}_ms")
                base = lat.get(f"baseline_{q}_ms")
                timed.append(
                    bound_check(f"{q}_ms", measured, maximum=limit, baseline=base)
                    if limit
                    else plain(Check(name=f"{q}_ms", candidate=measured, baseline=base))
                )
            return timed
        case RequireTagsGate(require_tags=keys):
            have = candidate.tags()
            return [
                plain(
                    Check(
                        name=f"tag {k}",
                        bound="present",
                        verdict="pass" if have.get(k) else "fail",
                        message="" if have.get(k) else "missing",
                    )
                )
                for k in keys
            ]
        case RequireSignatureGate(require_signature=required):
            if not required:
                return [plain(Check(name="signature", verdict="pass", bound="not required"))]
            return [
                plain(
                    Check(
                        name="signature",
                        bound="present",
                        verdict="pass" if seen.signature else "fail",
                        message="" if seen.signature else "the model has no signature",
                    )
                )
            ]
        case _:
            assert_never(gate)


def _evaluation(seen: Observed) -> Evaluation:
    if seen.evaluation is None:  # the runner always evaluates for these kinds
        raise GateError("the gate was not evaluated (this is a bug in mlflow-gitops)")
    return seen.evaluation


def result(
    candidate: Candidate, gate: Gate, found: list[Judged], base: VersionState | None
) -> GateResult:
    """The gate's result: it fails when any check failed or errored, and says which and why."""
    checks = [j.check for j in found]
    failed = [j.why for j in found if j.check.verdict in ("fail", "error")]
    return GateResult(
        model=candidate.model,
        target=candidate.target,
        version=candidate.label,
        gate=kind(gate),
        verdict="pass" if decide(checks) == "pass" else "fail",
        checks=tuple(checks),
        baseline_version=base.version if base else None,
        message="; ".join(failed) if failed else "passed",
    )


def error(candidate: Candidate, gate: str, exc: GateError, base: VersionState | None) -> GateResult:
    """Evidence that could not be gathered, as a failed gate that says why (never a crash)."""
    hint = f" ({exc.hint})" if exc.hint else ""
    return GateResult(
        model=candidate.model,
        target=candidate.target,
        version=candidate.label,
        gate=gate,
        verdict="fail",
        checks=(Check(name=gate, verdict="error", message=exc.message),),
        baseline_version=base.version if base else None,
        message=exc.message + hint,
    )


def rollback_skipped(candidate: Candidate) -> GateResult:
    """A revert to a former holder under `on_rollback: skip`."""
    return GateResult(
        model=candidate.model,
        target=candidate.target,
        version=candidate.label,
        gate="rollback",
        verdict="pass",
        message=(
            f"{candidate.label} held {candidate.target} before: gates skipped (on_rollback: skip)"
        ),
    )
