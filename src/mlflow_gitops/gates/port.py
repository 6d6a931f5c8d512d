"""What the gates need from the outside world, as a protocol and plain values: the registry's
backend serves it in production (MLflow: registry/mlflow/evidence.MlflowEvidence, over
gates/evidence.ModelEvidence), a fake serves the unit tests (tests/gates)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.spec.model import EvaluateSpec


class GateError(GitopsError):
    """Evidence could not be gathered; the gate fails with this message (never a crash)."""


@dataclass(frozen=True)
class Side:
    """A model to evaluate: its URI and the run whose artifacts (preprocessor, metrics) it uses,
    both in `registry`."""

    uri: str
    run_id: str | None  # None with a registry: the evidence asks that registry for it
    # the registry (its name in registry.yaml) that holds the model, when not the one planned:
    # the source of a copy not made yet, read with that registry's URI and credentials
    registry: str | None = None


@dataclass(frozen=True)
class Evaluation:
    """Metrics of candidate and baseline over the same rows, and their batch latencies."""

    rows: int
    candidate: dict[str, float]
    baseline: dict[str, float] | None
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50/p95 of each side


class Evidence(Protocol):
    """What the gate runner needs from the outside world. Each method raises GateError when the
    evidence cannot be gathered; the gate then fails with that message."""

    def run_metric(self, side: Side, key: str) -> float | None: ...

    def model_size_mb(self, side: Side) -> float: ...

    def has_signature(self, side: Side) -> bool: ...

    def data_digest(self, data: str, folder: Path) -> str: ...

    def hook_digest(self, ref: str, folder: Path) -> str: ...

    def evaluate(
        self,
        spec: EvaluateSpec,
        folder: Path,
        candidate: Side,
        baseline: Side | None,
        latency_rows: int | None,
    ) -> Evaluation: ...
