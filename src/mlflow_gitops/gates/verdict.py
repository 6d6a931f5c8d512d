"""Pure verdicts: MLflow's MetricThreshold meaning, with exact boundaries and explicit baselines."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from mlflow_gitops.plan.gates import Check, Verdict
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


@dataclass(frozen=True)
class Judged:
    """A check and what the gate's message says when it does not pass."""

    check: Check
    why: str


def digits(a: Fraction | float, b: Fraction | float) -> int:
    """The fewest significant digits, 6 at least and 17 at most, at which a and b print apart:
    a value a hair over its bound must not read "7.1 not <= 7.1"."""
    for p in range(6, 17):
        if _fmt(a, p) != _fmt(b, p):
            return p
    return 17


def _fmt(value: Fraction | float, p: int = 6) -> str:
    """`p` significant digits, or fewer (not under 6) when they already give the value exactly:
    0.3 stays 0.3 beside 0.30000000000000004, not 0.29999999999999999."""
    v = float(value)
    for k in range(6, p):
        if float(f"{v:.{k}g}") == v:
            return f"{v:.{k}g}"
    return f"{v:.{p}g}"


def _failed(name: str, candidate: float, baseline: float | None, bound: str, p: int = 6) -> str:
    base = f" (baseline {_fmt(baseline, p)})" if baseline is not None else ""
    return f"{name} {_fmt(candidate, p)}{base} not {bound}"


def _bounded(
    name: str, candidate: float, baseline: float | None, bound: str, ok: bool, p: int
) -> Judged:
    verdict: Verdict = "pass" if ok else "fail"
    check = Check(name=name, candidate=candidate, baseline=baseline, bound=bound, verdict=verdict)
    return Judged(check, _failed(name, candidate, baseline, bound, p))


def plain(check: Check) -> Judged:
    """A check decided without a threshold: its message (or its values) say why it did not pass."""
    if check.message or check.candidate is None:
        return Judged(check, f"{check.name}: {check.message}")
    return Judged(check, _failed(check.name, check.candidate, check.baseline, check.bound))


def compare(
    name: str,
    spec: MetricThreshold,
    candidate: float | None,
    baseline: float | None,
    on_missing_baseline: str = "pass",
) -> list[Judged]:
    """Every bound of a MetricThreshold as a check. Boundaries are inclusive and exact;
    `min_absolute_change: 0` means "not worse than the baseline"."""
    up = greater_is_better(name, spec)
    op = ">=" if up else "<="
    judged: list[Judged] = []
    if candidate is None:
        return [plain(Check(name=name, verdict="error", message=f"no value for {name}"))]
    c = exact(candidate)
    if spec.threshold is not None:
        t = exact(spec.threshold)
        ok = c >= t if up else c <= t
        p = 6 if ok else digits(c, t)
        judged.append(_bounded(name, candidate, baseline, f"{op} {_fmt(t, p)}", ok, p))
    for kind in ("min_absolute_change", "min_relative_change"):
        change = getattr(spec, kind)
        if change is None:
            continue
        if baseline is None:
            check = Check(
                name=name,
                candidate=candidate,
                bound=f"{kind} {_fmt(change)}",
                verdict="fail" if on_missing_baseline == "fail" else "no baseline",
                message="no baseline to compare with (first promotion)",
            )
            judged.append(plain(check))
            continue
        b = exact(baseline)
        margin = exact(change) if kind == "min_absolute_change" else abs(b) * exact(change)
        limit = b + margin if up else b - margin
        ok = c >= limit if up else c <= limit
        sign = "+" if up else "-"
        what = _fmt(change) if kind == "min_absolute_change" else f"{float(change):.4g}x|baseline|"
        label = " (not worse)" if change == 0 else ""
        bound = f"{op} baseline {sign} {what}{label}"
        # the limit is not printed: enough digits of candidate and baseline to tell it apart
        p = 6 if ok else digits(c, limit)
        judged.append(_bounded(name, candidate, baseline, bound, ok, p))
    return judged


def bound_check(
    name: str,
    value: float | None,
    *,
    maximum: float | None = None,
    minimum: float | None = None,
    baseline: float | None = None,
) -> Judged:
    """value <= maximum and value >= minimum, exactly; `baseline` is shown, never compared."""
    if value is None:
        missing = Check(
            name=name, baseline=baseline, verdict="error", message=f"no value for {name}"
        )
        return plain(missing)
    v = exact(value)
    over = maximum is not None and v > exact(maximum)
    under = minimum is not None and v < exact(minimum)
    crossed = [b for b, out in ((maximum, over), (minimum, under)) if out and b is not None]
    p = max((digits(v, exact(b)) for b in crossed), default=6)
    parts = [f"<= {_fmt(maximum, p)}"] if maximum is not None else []
    parts += [f">= {_fmt(minimum, p)}"] if minimum is not None else []
    return _bounded(name, value, baseline, " and ".join(parts), not crossed, p)


def decide(checks: list[Check]) -> str:
    """A gate passes when no check failed or errored."""
    return "fail" if any(c.verdict in ("fail", "error") for c in checks) else "pass"
