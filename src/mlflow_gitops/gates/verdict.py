"""Pure verdicts: MLflow's MetricThreshold meaning, with exact boundaries and explicit baselines."""

from __future__ import annotations

from fractions import Fraction

from mlflow_gitops.plan.gates import Check
from mlflow_gitops.spec.model import MetricThreshold

# metrics where a larger value is better; every other metric (errors, latency, size) is smaller-better
GREATER_IS_BETTER = frozenset(
    {"r2", "accuracy", "accuracy_score", "precision", "precision_score", "recall", "recall_score",
     "f1", "f1_score", "roc_auc", "auc", "explained_variance"}
)  # fmt: skip


def exact(value: float) -> Fraction:
    """The decimal a user wrote or a metric printed, exactly: 0.1 is 1/10, not 0.1000000000000000055."""
    return Fraction(repr(float(value)))


def greater_is_better(metric: str, spec: MetricThreshold | None = None) -> bool:
    """The spec's choice, else the usual direction for the metric's name."""
    if spec is not None and spec.greater_is_better is not None:
        return spec.greater_is_better
    return metric.lower() in GREATER_IS_BETTER


def _fmt(value: Fraction | float) -> str:
    return f"{float(value):.6g}"


def compare(
    name: str,
    spec: MetricThreshold,
    candidate: float | None,
    baseline: float | None,
    on_missing_baseline: str = "pass",
) -> list[Check]:
    """Every bound of a MetricThreshold as a check. Boundaries are inclusive and exact;
    `min_absolute_change: 0` means "not worse than the baseline"."""
    up = greater_is_better(name, spec)
    op = ">=" if up else "<="
    checks: list[Check] = []
    if candidate is None:
        return [Check(name=name, verdict="error", message=f"no value for {name}")]
    c = exact(candidate)
    if spec.threshold is not None:
        t = exact(spec.threshold)
        ok = c >= t if up else c <= t
        checks.append(
            Check(
                name=name,
                candidate=candidate,
                baseline=baseline,
                bound=f"{op} {_fmt(t)}",
                verdict="pass" if ok else "fail",
            )
        )
    for kind in ("min_absolute_change", "min_relative_change"):
        change = getattr(spec, kind)
        if change is None:
            continue
        if baseline is None:
            checks.append(
                Check(
                    name=name,
                    candidate=candidate,
                    bound=f"{kind} {_fmt(change)}",
                    verdict="fail" if on_missing_baseline == "fail" else "no baseline",
                    message="no baseline to compare with (first promotion)",
                )
            )
            continue
        b = exact(baseline)
        margin = exact(change) if kind == "min_absolute_change" else abs(b) * exact(change)
        limit = b + margin if up else b - margin
        ok = c >= limit if up else c <= limit
        sign = "+" if up else "-"
        what = _fmt(change) if kind == "min_absolute_change" else f"{float(change):.4g}x|baseline|"
        label = " (not worse)" if change == 0 else ""
        checks.append(
            Check(
                name=name,
                candidate=candidate,
                baseline=baseline,
                bound=f"{op} baseline {sign} {what}{label}",
                verdict="pass" if ok else "fail",
            )
        )
    return checks


def bound_check(
    name: str, value: float | None, *, maximum: float | None = None, minimum: float | None = None
) -> Check:
    """value <= maximum and value >= minimum, exactly."""
    if value is None:
        return Check(name=name, verdict="error", message=f"no value for {name}")
    v = exact(value)
    parts, ok = [], True
    if maximum is not None:
        parts.append(f"<= {_fmt(maximum)}")
        ok = ok and v <= exact(maximum)
    if minimum is not None:
        parts.append(f">= {_fmt(minimum)}")
        ok = ok and v >= exact(minimum)
    return Check(
        name=name, candidate=value, bound=" and ".join(parts), verdict="pass" if ok else "fail"
    )


def decide(checks: list[Check]) -> str:
    """A gate passes when no check failed or errored."""
    return "fail" if any(c.verdict in ("fail", "error") for c in checks) else "pass"
