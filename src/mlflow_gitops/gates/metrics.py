"""Evaluation metrics as mergeable partial sums: pure (no MLflow, no I/O).

Every metric is a function of sums over the rows. Each sum is kept exactly (`ExactSum`: no
rounding at all), so partial sums from any split of the data (stream batches, Spark partitions)
merge into the same bits in any order: the metrics do not depend on how the data was cut.
ROC AUC keeps positive and negative counts per distinct score (`RocCounts`): exact while the
scores are few, then a fixed histogram with a stated error bound, in bounded memory either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.spec.model import EVALUATION_METRICS

METRICS = EVALUATION_METRICS  # the names registry.yaml may use (checked by validate)
# the version of the metric formulas below: recorded scores (gates/reuse.py) are keyed by it, so
# bump it when a formula changes and every version is scored again
DEFINITIONS = 1
CLASSIFICATION = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc"})

_UNIT_EXP = 1126  # sums count units of 2**-1126: every 26-bit half-mantissa is a whole number
_CHUNK = 1 << 20  # per bincount: |sum of 2**20 halves below 2**26| < 2**53: float adds are exact


class MetricError(GitopsError):
    """A metric that cannot be computed (an unknown name)."""


class ExactSum:
    """The exact sum of float64 values: an integer count of 2**-1126 units, plus the
    non-finite terms. `merge` is integer addition, so any split of the data gives the same
    bits; `value` rounds once, correctly."""

    __slots__ = ("special", "units")

    def __init__(self, units: int = 0, special: float = 0.0) -> None:
        self.units = units
        self.special = special  # 0.0, or the nan/inf that non-finite terms sum to

    def add(self, values: Any) -> None:
        """Add every element of an array (exactly)."""
        import numpy as np

        x = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
        finite = np.isfinite(x)
        if not finite.all():
            self.special += float(x[~finite].sum())
            x = x[finite]
        for start in range(0, x.size, _CHUNK):
            # the IEEE fields: x = sign * mantissa * 2**(max(biased, 1) - 1075), exactly
            bits = x[start : start + _CHUNK].view(np.int64)
            biased = (bits >> 52) & 0x7FF
            mantissa = (bits & 0xFFFFFFFFFFFFF) | ((biased != 0).astype(np.int64) << 52)
            sign = np.where(bits < 0, -1.0, 1.0)
            highs = np.bincount(biased, weights=(mantissa >> 26) * sign)
            lows = np.bincount(biased, weights=(mantissa & 0x3FFFFFF) * sign)
            for k in np.flatnonzero((highs != 0) | (lows != 0)).tolist():
                # in units of 2**-1126: shift by max(k, 1) - 1075 + 1126
                self.units += ((int(highs[k]) << 26) + int(lows[k])) << (max(k, 1) + 51)

    def merge(self, other: ExactSum) -> None:
        """Add another partial sum into this one."""
        self.units += other.units
        self.special += other.special

    def value(self) -> float:
        """The sum, rounded once to the nearest double."""
        if self.special != 0.0 or math.isnan(self.special):
            return self.special
        try:
            return self.units / (1 << _UNIT_EXP)  # int / int rounds correctly
        except OverflowError:
            return math.inf if self.units > 0 else -math.inf

    def to_state(self) -> list[str]:
        return [hex(self.units), repr(self.special)]

    @classmethod
    def from_state(cls, state: list[str]) -> ExactSum:
        return cls(int(state[0], 16), float(state[1]))


class RocCounts:
    """Positive and negative counts per distinct score, for ROC AUC in bounded memory.

    Exact (ties count one half, as in sklearn's roc_auc_score) while there are at most
    `MAX_DISTINCT` distinct scores. Beyond that, counts per bin of `BINS` equal bins over [0, 1]
    (scores outside are clipped into the end bins): pairs in different bins are ordered exactly
    and pairs within a bin count one half, so the error is at most
    sum_b(pos_b * neg_b) / (2 * P * N) (`error_bound`), which is at most half the largest
    share of the negatives that falls in one bin. Which of the two it ends in depends on the
    number of distinct scores in all the data only, never on how the data was split.
    """

    MAX_DISTINCT = 1 << 16
    BINS = 1 << 16

    def __init__(self) -> None:
        import numpy as np

        self.binned = False
        self.keys: Any = np.empty(0, dtype=np.float64)  # sorted scores, or bin numbers
        self.pos: Any = np.empty(0, dtype=np.int64)
        self.neg: Any = np.empty(0, dtype=np.int64)
        self.nan = False

    def add(self, truth: Any, scores: Any) -> None:
        """Count a batch: boolean labels and their scores."""
        import numpy as np

        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        t = np.asarray(truth, dtype=bool).reshape(-1)
        bad = np.isnan(s)
        if bad.any():
            self.nan = True
            s, t = s[~bad], t[~bad]
        if self.binned:
            s = self._bin(s)
        keys, inverse = np.unique(s, return_inverse=True)
        pos = np.bincount(inverse[t], minlength=keys.size)
        neg = np.bincount(inverse[~t], minlength=keys.size)
        self._combine(keys, pos, neg, self.binned)

    def merge(self, other: RocCounts) -> None:
        """Add another partial count into this one."""
        self.nan = self.nan or other.nan
        self._combine(other.keys, other.pos, other.neg, other.binned)

    def _bin(self, scores: Any) -> Any:
        import numpy as np

        return np.clip(np.floor(scores * self.BINS), 0, self.BINS - 1)

    def _combine(self, keys: Any, pos: Any, neg: Any, binned: bool) -> None:
        import numpy as np

        if binned and not self.binned:
            self._to_bins()
        elif self.binned and not binned:
            keys = self._bin(keys)
        union, inverse = np.unique(np.concatenate([self.keys, keys]), return_inverse=True)
        self.pos = np.bincount(
            inverse, weights=np.concatenate([self.pos, pos]), minlength=union.size
        ).astype(np.int64)  # counts below 2**53: the float adds are exact
        self.neg = np.bincount(
            inverse, weights=np.concatenate([self.neg, neg]), minlength=union.size
        ).astype(np.int64)
        self.keys = union
        if not self.binned and union.size > self.MAX_DISTINCT:
            self._to_bins()

    def _to_bins(self) -> None:
        import numpy as np

        self.binned = True
        union, inverse = np.unique(self._bin(self.keys), return_inverse=True)
        self.pos = np.bincount(inverse, weights=self.pos, minlength=union.size).astype(np.int64)
        self.neg = np.bincount(inverse, weights=self.neg, minlength=union.size).astype(np.int64)
        self.keys = union

    def auc(self) -> float:
        """P(score of a positive > score of a negative) + P(equal) / 2, rounded once."""
        if self.nan:
            return math.nan
        positives, negatives = int(self.pos.sum()), int(self.neg.sum())
        if not positives or not negatives:
            return math.nan
        twice, below = 0, 0
        for p, n in zip(self.pos.tolist(), self.neg.tolist(), strict=True):
            twice += p * (2 * below + n)
            below += n
        return twice / (2 * positives * negatives)

    def error_bound(self) -> float:
        """How far `auc` may be from the exact value: 0 while exact."""
        positives, negatives = int(self.pos.sum()), int(self.neg.sum())
        if not self.binned or not positives or not negatives:
            return 0.0
        ties: int = sum(p * n for p, n in zip(self.pos.tolist(), self.neg.tolist(), strict=True))
        return ties / (2 * positives * negatives)

    def to_state(self) -> dict[str, Any]:
        return {
            "binned": self.binned,
            "nan": self.nan,
            "keys": [float(k).hex() for k in self.keys.tolist()],
            "pos": self.pos.tolist(),
            "neg": self.neg.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RocCounts:
        import numpy as np

        out = cls()
        out.binned = bool(state["binned"])
        out.nan = bool(state["nan"])
        out.keys = np.array([float.fromhex(k) for k in state["keys"]], dtype=np.float64)
        out.pos = np.array(state["pos"], dtype=np.int64)
        out.neg = np.array(state["neg"], dtype=np.int64)
        return out


_SUMS = ("sse", "sae", "sum_y", "sum_y2", "sape")
_COUNTS = ("n", "mape_n", "tp", "fp", "fn", "tn")


class Accumulator:
    """Metrics over a stream as mergeable partial sums: exact sums, not a sample. Only the sums
    the wanted metrics need are kept (each costs a few passes over the batch)."""

    def __init__(self, wanted: set[str] | frozenset[str]) -> None:
        unknown = sorted(set(wanted) - set(METRICS))
        if unknown:
            raise MetricError(f"unknown metric {unknown[0]!r}", f"use one of {', '.join(METRICS)}")
        self.wanted = frozenset(wanted)
        self.n = self.mape_n = 0
        self.tp = self.fp = self.fn = self.tn = 0
        self.sse, self.sae, self.sum_y, self.sum_y2, self.sape = (ExactSum() for _ in _SUMS)
        self.roc = RocCounts() if "roc_auc" in self.wanted else None

    def add(self, y: Any, p: Any) -> None:
        """Add a batch of targets and predictions (float arrays of the same length)."""
        import numpy as np

        e = p - y
        self.n += len(y)
        wanted = self.wanted
        if wanted & {"mse", "rmse", "r2"}:
            self.sse.add(e * e)
        if "mae" in wanted:
            self.sae.add(np.abs(e))
        if "r2" in wanted:
            self.sum_y.add(y)
            self.sum_y2.add(y * y)
        if "mape" in wanted:
            nz = y != 0
            self.sape.add(np.abs(e[nz] / y[nz]))
            self.mape_n += int(nz.sum())
        if self.wanted & CLASSIFICATION:
            label = p >= 0.5
            truth = y >= 0.5
            self.tp += int((label & truth).sum())
            self.fp += int((label & ~truth).sum())
            self.fn += int((~label & truth).sum())
            self.tn += int((~label & ~truth).sum())
            if self.roc is not None:
                self.roc.add(truth, p)

    def merge(self, other: Accumulator) -> None:
        """Add another partial accumulation (of the same metrics) into this one."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in _SUMS:
            getattr(self, name).merge(getattr(other, name))
        if self.roc is not None and other.roc is not None:
            self.roc.merge(other.roc)

    def to_state(self) -> dict[str, Any]:
        """A JSON-safe copy of the partial sums (what a Spark task sends to the driver)."""
        return {
            "wanted": sorted(self.wanted),
            **{name: getattr(self, name) for name in _COUNTS},
            **{name: getattr(self, name).to_state() for name in _SUMS},
            "roc": self.roc.to_state() if self.roc is not None else None,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Accumulator:
        out = cls(set(state["wanted"]))
        for name in _COUNTS:
            setattr(out, name, int(state[name]))
        for name in _SUMS:
            setattr(out, name, ExactSum.from_state(state[name]))
        if state["roc"] is not None:
            out.roc = RocCounts.from_state(state["roc"])
        return out

    def result(self) -> dict[str, float]:
        """Every wanted metric, each rounded once from the exact sums."""
        n = self.n
        sse, sae, sape = self.sse.value(), self.sae.value(), self.sape.value()
        all_metrics: dict[str, Callable[[], float]] = {
            "mse": lambda: sse / n,
            "rmse": lambda: math.sqrt(sse / n),
            "mae": lambda: sae / n,
            "r2": self._r2,
            "mape": lambda: sape / self.mape_n if self.mape_n else math.nan,
            "accuracy": lambda: (self.tp + self.tn) / n,
            "precision": lambda: self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0,
            "recall": lambda: self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0,
            "f1": lambda: 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0,
            "roc_auc": lambda: self.roc.auc() if self.roc is not None else math.nan,
        }
        return {name: float(all_metrics[name]()) for name in sorted(self.wanted)}

    def _r2(self) -> float:
        # sst = sum_y2 - sum_y**2 / n, from the exact sums without cancellation in floats
        from fractions import Fraction

        if not self.n or self.sum_y.special or self.sum_y2.special:
            return math.nan
        unit = Fraction(1, 1 << _UNIT_EXP)
        sst = self.sum_y2.units * unit - (self.sum_y.units * unit) ** 2 / self.n
        return 1 - self.sse.value() / float(sst) if sst else math.nan


def latency_summary(timings: Mapping[str, list[float]]) -> dict[str, float]:
    """`<side>_p50_ms` and `<side>_p95_ms` of each side's predict timings (in ms); a side that
    was never timed is left out."""
    out: dict[str, float] = {}
    for side, values in timings.items():
        if values:
            out[f"{side}_p50_ms"] = percentile(values, 50)
            out[f"{side}_p95_ms"] = percentile(values, 95)
    return out


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, linear between closest ranks."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
