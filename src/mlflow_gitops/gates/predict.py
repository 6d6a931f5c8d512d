"""The evaluate gate's batch step, the same in both engines (the local loop, each Spark task):
split a frame into features and target, transform it with each run's preprocessor, predict with
each model, add to the exact metric sums, and time the first predict calls for the latency gate.
No MLflow and no files here: the models, preprocessors and `prepare` hook arrive loaded."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlflow_gitops.gates import vectorize
from mlflow_gitops.gates.metrics import Accumulator, latency_summary
from mlflow_gitops.gates.port import Evaluation, GateError, Side
from mlflow_gitops.spec.model import EvaluateSpec

LATENCY_BATCHES = 20  # predict calls timed per side

Hook = Callable[[Any], tuple[Any, Any]]  # prepare: frame -> (features, target)


def named(candidate: Side, baseline: Side | None) -> list[tuple[str, Side]]:
    """The sides an evaluation compares, by the names its results use."""
    return [("candidate", candidate)] + ([("baseline", baseline)] if baseline else [])


@dataclass(frozen=True)
class Loaded:
    """One side ready to predict: its model, and its preprocessor (None when the gate has none)
    with the sha256 of its file (sides that logged the same file share one transform)."""

    name: str
    model: Any
    preprocessor: Any = None
    digest: str = ""


@dataclass
class Scoring:
    """Each side's metric sums and predict timings over the batches seen so far.
    `latency_rows` 0: no latency gate, nothing is timed."""

    spec: EvaluateSpec
    prepare: Hook | None
    sides: tuple[Loaded, ...]
    latency_rows: int = 0
    sums: dict[str, Accumulator] = field(init=False)
    timings: dict[str, list[float]] = field(init=False)

    def __post_init__(self) -> None:
        self.sums = {s.name: Accumulator(set(self.spec.metrics)) for s in self.sides}
        self.timings = {s.name: [] for s in self.sides}

    def add(self, frame: Any) -> None:
        """One batch: each side's predictions added to its sums (the first calls timed)."""
        for name, y, predictions in self._predict(frame):
            self.sums[name].add(y, predictions)

    def partial(self) -> dict[str, Any]:
        """Each side's sums as JSON-safe state (what a Spark task returns to the driver)."""
        return {name: sums.to_state() for name, sums in self.sums.items()}

    def merge(self, partial: Mapping[str, Any]) -> None:
        """Add another scoring's `partial` sums (a Spark task's) into these, exactly."""
        for name, state in partial.items():
            self.sums[name].merge(Accumulator.from_state(state))

    def time(self, frame: Any) -> None:
        """Time predict on this batch without adding it to the sums."""
        for _ in self._predict(frame):
            pass

    def evaluation(self) -> Evaluation:
        """The metrics of both sides over the same rows, and their latencies."""
        candidate = self.sums["candidate"]
        if candidate.n == 0:
            raise GateError(
                f"the evaluation data {self.spec.data} has no rows left after preparation"
            )
        baseline = self.sums.get("baseline")
        return Evaluation(
            rows=candidate.n,
            candidate=candidate.result(),
            baseline=baseline.result() if baseline else None,
            latency_ms=latency_summary(self.timings),
        )

    def _predict(self, frame: Any) -> list[tuple[str, Any, Any]]:
        x, y = split(frame, self.spec, self.prepare)
        if len(y) == 0:
            return []  # prepare dropped the whole batch (e.g. a partition it filters out)
        transformed: dict[str, Any] = {}  # one transform when both runs logged the same file
        out = []
        for side in self.sides:
            if side.digest not in transformed:
                transformed[side.digest] = transform(side.preprocessor, x)
            wanted = LATENCY_BATCHES - len(self.timings[side.name]) if self.latency_rows else 0
            # the latency gate times the evaluation's own first predictions: nothing is read or
            # predicted twice
            predictions, timed = predict_timed(
                side.model, transformed[side.digest], side.name, self.latency_rows, wanted
            )
            self.timings[side.name].extend(timed)
            out.append((side.name, y, predictions))
        return out


def split(frame: Any, spec: EvaluateSpec, prepare: Hook | None) -> tuple[Any, Any]:
    """(features, target as floats) of a frame: the `prepare` hook's, else all but `target`."""
    import numpy as np

    if prepare is not None:
        try:
            x, y = prepare(frame)
        except Exception as exc:
            raise GateError(
                f"prepare hook {spec.prepare} failed: {type(exc).__name__}: {exc}"
            ) from None
        return x, np.asarray(y, dtype=float)
    assert spec.target is not None
    if spec.target not in frame.columns:
        raise GateError(
            f"the evaluation data has no column {spec.target!r}", "set target: or prepare:"
        )
    return frame.drop(columns=[spec.target]), frame[spec.target].to_numpy(dtype=float)


def transform(preprocessor: Any, x: Any) -> Any:
    """The features through a fitted preprocessor (transform only: never fit on evaluation data)."""
    if preprocessor is None:
        return x
    try:
        if hasattr(preprocessor, "vocabulary_"):  # a DictVectorizer: column by column
            return vectorize.transform(preprocessor, x)
        return preprocessor.transform(x)
    except Exception as exc:
        raise GateError(
            f"the preprocessor failed to transform the data: {type(exc).__name__}: {exc}"
        ) from None


def predict(model: Any, features: Any, side: str) -> Any:
    """The model's predictions as a flat float array."""
    import numpy as np

    try:
        return np.asarray(model.predict(features), dtype=float).reshape(-1)
    except Exception as exc:
        raise GateError(
            f"the {side} model failed to predict: {type(exc).__name__}: {str(exc)[:300]}"
        ) from None


def predict_timed(
    model: Any, features: Any, side: str, rows: int, most: int
) -> tuple[Any, list[float]]:
    """Predictions for every row and the milliseconds of up to `most` predict calls on
    `rows`-row slices (the first full slices of these features; the rest in one call)."""
    import numpy as np

    total = features.shape[0]
    if rows <= 0 or most <= 0 or total == 0:
        return predict(model, features, side), []
    if total < rows:  # fewer rows than a latency batch: this one call is the measurement
        t0 = time.perf_counter()
        predictions = predict(model, features, side)
        return predictions, [(time.perf_counter() - t0) * 1000]
    timed = min(most, total // rows)
    parts, out = [], []
    for start in range(0, timed * rows, rows):
        t0 = time.perf_counter()
        parts.append(predict(model, features[start : start + rows], side))
        out.append((time.perf_counter() - t0) * 1000)
    if timed * rows < total:
        parts.append(predict(model, features[timed * rows :], side))
    return np.concatenate(parts), out
