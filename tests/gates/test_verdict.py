"""Threshold semantics: MLflow's MetricThreshold, with exact boundaries and explicit baselines."""

from __future__ import annotations

import pytest

from mlflow_gitops.gates.verdict import Judged, bound_check, compare, decide
from mlflow_gitops.spec.model import MetricThreshold


def verdicts(
    name: str,
    spec: dict[str, object],
    candidate: float,
    baseline: float | None,
    missing: str = "pass",
) -> list[str]:
    threshold = MetricThreshold(**spec)  # type: ignore[arg-type]
    return [j.check.verdict for j in compare(name, threshold, candidate, baseline, missing)]


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
    assert bound_check("rmse", 7.0, maximum=7.0).check.verdict == "pass"
    assert bound_check("rmse", 7.01, maximum=7.0).check.verdict == "fail"
    assert bound_check("r2", 0.2, minimum=0.3).check.verdict == "fail"
    assert bound_check("x", None, maximum=1).check.verdict == "error"
    no_baseline = compare("rmse", MetricThreshold(min_absolute_change=0), 5.0, None)
    assert decide([j.check for j in no_baseline]) == "pass"
    assert decide([bound_check("x", None, maximum=1).check]) == "fail"


def test_spec_needs_a_bound() -> None:
    with pytest.raises(ValueError, match="at least one of"):
        MetricThreshold()


@pytest.mark.parametrize(
    ("judged", "why"),
    [
        # a hair over the bound: as many digits as it takes to see it
        (bound_check("rmse", 7.1000000001, maximum=7.1), "rmse 7.1000000001 not <= 7.1"),
        (bound_check("r2", 0.79999999, minimum=0.8), "r2 0.79999999 not >= 0.8"),
        (
            bound_check("mae", 0.1234568, maximum=0.1234567, minimum=0),
            "mae 0.1234568 not <= 0.1234567 and >= 0",
        ),
        (
            compare("rmse", MetricThreshold(threshold=7), 7.000000001, 6.5)[0],
            "rmse 7.000000001 (baseline 6.5) not <= 7",
        ),
        # the limit (baseline - 0.5) is not printed: candidate and baseline carry the digits
        (
            compare("rmse", MetricThreshold(min_absolute_change=0.5), 5.5000001, 6)[0],
            "rmse 5.5000001 (baseline 6) not <= baseline - 0.5",
        ),
        # far from the bound: 6 significant digits, as always
        (bound_check("rmse", 8.123456789, maximum=7), "rmse 8.12346 not <= 7"),
        (bound_check("size_mb", 0.1 + 0.2, maximum=0.3), "size_mb 0.30000000000000004 not <= 0.3"),
    ],
)
def test_a_failure_shows_enough_digits_to_tell_value_and_bound_apart(
    judged: Judged, why: str
) -> None:
    assert judged.check.verdict == "fail"
    assert judged.why == why
