"""Threshold semantics: MLflow's MetricThreshold, with exact boundaries and explicit baselines."""

from __future__ import annotations

import pytest

from mlflow_gitops.gates.verdict import bound_check, compare, decide
from mlflow_gitops.spec.model import MetricThreshold


def verdicts(
    name: str,
    spec: dict[str, object],
    candidate: float,
    baseline: float | None,
    missing: str = "pass",
) -> list[str]:
    return [c.verdict for c in compare(name, MetricThreshold(**spec), candidate, baseline, missing)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "spec", "candidate", "baseline", "expected"),
    [
        # threshold: an absolute bound, inclusive; direction from the metric's name
        ("rmse", {"threshold": 7.0}, 7.0, None, ["pass"]),
        ("rmse", {"threshold": 7.0}, 7.000000001, None, ["fail"]),
        ("r2", {"threshold": 0.5}, 0.5, None, ["pass"]),
        ("r2", {"threshold": 0.5}, 0.4999, None, ["fail"]),
        # min_absolute_change 0 = not worse than the baseline; equal values pass
        ("rmse", {"min_absolute_change": 0}, 6.43, 6.43, ["pass"]),
        ("rmse", {"min_absolute_change": 0}, 6.4300001, 6.43, ["fail"]),
        (
            "accuracy",
            {"min_absolute_change": 0.01},
            0.91,
            0.9,
            ["pass"],
        ),  # 0.9 + 0.01 is 0.91 exactly
        ("accuracy", {"min_absolute_change": 0.01}, 0.909999, 0.9, ["fail"]),
        # relative change at the exact boundary: 0.1 + 0.2 style float error would flip these
        ("rmse", {"min_relative_change": 0.1}, 0.9, 1.0, ["pass"]),
        ("rmse", {"min_relative_change": 0.3}, 0.7, 1.0, ["pass"]),
        ("r2", {"min_relative_change": 0.1}, 0.33, 0.3, ["pass"]),
        # negative baselines: the margin is relative to |baseline|
        ("r2", {"min_relative_change": 0.5}, -1.0, -2.0, ["pass"]),
        ("r2", {"min_relative_change": 0.5}, -1.1, -2.0, ["fail"]),
        ("score", {"min_relative_change": 0.5, "greater_is_better": False}, -3.0, -2.0, ["pass"]),
        # explicit direction wins over the name
        ("rmse", {"threshold": 5.0, "greater_is_better": True}, 6.0, None, ["pass"]),
        # no baseline (first promotion): reported, passes unless on_missing_baseline: fail
        ("rmse", {"min_absolute_change": 0}, 6.0, None, ["no baseline"]),
        ("rmse", {"threshold": 7.0, "min_absolute_change": 0}, 6.0, None, ["pass", "no baseline"]),
    ],
)
def test_threshold_semantics(
    name: str,
    spec: dict[str, object],
    candidate: float,
    baseline: float | None,
    expected: list[str],
) -> None:
    assert verdicts(name, spec, candidate, baseline) == expected


def test_missing_baseline_can_fail() -> None:
    assert verdicts("rmse", {"min_absolute_change": 0}, 6.0, None, missing="fail") == ["fail"]


def test_decide_and_bounds() -> None:
    assert bound_check("rmse", 7.0, maximum=7.0).verdict == "pass"
    assert bound_check("rmse", 7.01, maximum=7.0).verdict == "fail"
    assert bound_check("r2", 0.2, minimum=0.3).verdict == "fail"
    assert bound_check("x", None, maximum=1).verdict == "error"
    no_baseline = compare("rmse", MetricThreshold(min_absolute_change=0), 5.0, None)
    assert decide(no_baseline) == "pass"
    assert decide([bound_check("x", None, maximum=1)]) == "fail"


def test_spec_needs_a_bound() -> None:
    with pytest.raises(ValueError, match="at least one of"):
        MetricThreshold()
