"""Mergeable partial sums: exact against fractions and sklearn, the same for any split."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score, roc_auc_score

from mlflow_gitops.gates.metrics import METRICS, Accumulator, ExactSum, MetricError, RocCounts


def _pieces(values: np.ndarray, cuts: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    at = np.sort(rng.choice(np.arange(1, len(values)), size=cuts, replace=False))
    return np.split(values, at)


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(1).normal(size=10_000),
        np.random.default_rng(2).normal(size=5_000)
        * 10.0 ** np.random.default_rng(3).integers(-300, 300, 5_000),
        np.array([1e308, 1e308, -1e308, 1.0, -1e-320, 5e-324, 2.0**-1074]),
        np.array([1e16, 1.0, -1e16, 1.0]),  # naive float sum: 0.0 or 1.0; exact: 2.0
        np.array([0.0, -0.0]),
    ],
    ids=["normal", "wide-exponents", "extremes", "cancellation", "zeros"],
)
def test_exact_sum_is_the_correctly_rounded_sum_for_any_split(values: np.ndarray) -> None:
    whole = ExactSum()
    whole.add(values)
    assert whole.value() == float(sum(Fraction(v) for v in values.tolist()))
    for seed in range(3):
        parts = []
        for piece in _pieces(values, min(3, len(values) - 1), seed):
            part = ExactSum()
            part.add(piece)
            parts.append(ExactSum.from_state(json.loads(json.dumps(part.to_state()))))
        merged = ExactSum()
        for part in reversed(parts):
            merged.merge(part)
        assert merged.value() == whole.value()


@pytest.mark.parametrize(
    ("values", "expected"),
    [([1.0, math.inf], math.inf), ([math.inf, -math.inf], math.nan), ([1.0, math.nan], math.nan)],
)
def test_exact_sum_of_non_finite_terms(values: list[float], expected: float) -> None:
    total = ExactSum()
    total.add(np.array(values))
    assert total.value() == expected or (math.isnan(expected) and math.isnan(total.value()))


def test_exact_sum_overflowing_a_double_is_infinite() -> None:
    total = ExactSum()
    total.add(np.array([1.7e308, 1.7e308]))
    assert total.value() == math.inf


def _regression(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.gamma(2.0, 8.0, n)
    y[::97] = 0.0  # mape skips zero targets
    return y, y + rng.normal(0, 3, n)


def test_accumulator_matches_sklearn_and_any_split_gives_the_same_bits() -> None:
    y, p = _regression(50_000, 4)
    wanted = {"rmse", "mse", "mae", "r2", "mape"}
    whole = Accumulator(wanted)
    whole.add(y, p)
    result = whole.result()
    assert result["mse"] == pytest.approx(mean_squared_error(y, p), rel=1e-12)
    assert result["rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, p)), rel=1e-12)
    assert result["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-12)
    assert result["r2"] == pytest.approx(r2_score(y, p), rel=1e-12)
    nz = y != 0
    assert result["mape"] == pytest.approx(np.mean(np.abs((p[nz] - y[nz]) / y[nz])), rel=1e-12)
    for seed in range(3):
        merged = Accumulator(wanted)
        for ys, ps in zip(_pieces(y, 7, seed), _pieces(p, 7, seed), strict=True):
            part = Accumulator(wanted)
            part.add(ys, ps)
            merged.merge(Accumulator.from_state(json.loads(json.dumps(part.to_state()))))
        assert merged.result() == result  # bit for bit
        assert merged.n == whole.n


def test_classification_metrics_merge_exactly() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(20_000) < 0.3).astype(float)
    p = np.clip(y * 0.4 + rng.random(20_000) * 0.6, 0, 1)
    wanted = {"accuracy", "precision", "recall", "f1", "roc_auc"}
    whole = Accumulator(wanted)
    whole.add(y, p)
    merged = Accumulator(wanted)
    for ys, ps in zip(_pieces(y, 5, 0), _pieces(p, 5, 0), strict=True):
        part = Accumulator(wanted)
        part.add(ys, ps)
        merged.merge(part)
    assert merged.result() == whole.result()
    assert whole.result()["roc_auc"] == pytest.approx(roc_auc_score(y >= 0.5, p), abs=1e-12)


@pytest.mark.parametrize("distinct", [2, 11, 1000, RocCounts.MAX_DISTINCT])
def test_roc_auc_is_exact_over_few_distinct_scores(distinct: int) -> None:
    rng = np.random.default_rng(distinct)
    n = max(4 * distinct, 10_000)
    truth = rng.random(n) < 0.4
    levels = np.sort(rng.random(distinct))
    index = np.clip((rng.random(n) * 0.6 + truth * 0.4) * distinct, 0, distinct - 1).astype(int)
    index[:distinct] = np.arange(distinct)  # every level present: exactly `distinct` scores
    scores = levels[index]
    counts = RocCounts()
    for start in range(0, n, 3_000):
        counts.add(truth[start : start + 3_000], scores[start : start + 3_000])
    assert not counts.binned
    assert counts.error_bound() == 0.0
    assert counts.auc() == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)


def test_roc_auc_over_many_scores_is_within_its_stated_bound_and_split_free() -> None:
    rng = np.random.default_rng(6)
    n = 300_000
    truth = rng.random(n) < 0.2
    scores = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * truth)))
    exact = roc_auc_score(truth, scores)
    whole = RocCounts()
    whole.add(truth, scores)
    assert whole.binned
    assert whole.keys.size <= RocCounts.BINS
    bound = whole.error_bound()
    assert 0 < bound < 1e-4
    assert abs(whole.auc() - exact) <= bound
    negatives = np.bincount(np.floor(scores[~truth] * RocCounts.BINS).astype(int))
    assert bound <= negatives.max() / (~truth).sum() / 2  # the documented simple bound
    # partitions that are each exact (few scores) but many together end binned, like the whole
    merged = RocCounts()
    for piece in range(10):
        part = RocCounts()
        part.add(truth[piece::10][:8_000], scores[piece::10][:8_000])
        assert not part.binned
        merged.merge(RocCounts.from_state(json.loads(json.dumps(part.to_state()))))
    direct = RocCounts()
    direct.add(
        np.concatenate([truth[i::10][:8_000] for i in range(10)]),
        np.concatenate([scores[i::10][:8_000] for i in range(10)]),
    )
    assert merged.binned
    assert direct.binned
    assert merged.auc() == direct.auc()


def test_roc_auc_without_both_classes_or_with_nan_scores_is_nan() -> None:
    one_class = RocCounts()
    one_class.add(np.ones(10, bool), np.linspace(0, 1, 10))
    assert math.isnan(one_class.auc())
    with_nan = RocCounts()
    with_nan.add(np.array([True, False]), np.array([0.2, math.nan]))
    assert math.isnan(with_nan.auc())


def test_unknown_metric_is_refused_and_every_known_one_is_computed() -> None:
    with pytest.raises(MetricError, match="unknown metric 'rsme'"):
        Accumulator({"rsme"})
    everything = Accumulator(set(METRICS))
    everything.add(np.array([0.0, 1.0, 1.0]), np.array([0.2, 0.9, 0.4]))
    assert set(everything.result()) == set(METRICS)
