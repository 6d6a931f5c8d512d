"""Evidence as data: satisfies gates.port.Evidence without MLflow, models or files, and records
every question the gates asked (so a test sees that a cached verdict loaded no model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_gitops.gates.port import Evaluation, GateError, Side
from mlflow_gitops.spec.model import EvaluateSpec


@dataclass(frozen=True)
class FakeModel:
    """What a model would show: its evaluation metrics, size, signature and predict latency;
    `error` makes it fail to load."""

    metrics: dict[str, float] = field(default_factory=dict)
    size_mb: float = 1.0
    signature: bool = True
    p50_ms: float | None = None
    p95_ms: float | None = None
    error: str | None = None
    run_id: str | None = None  # its run, for a side that carries none (a copy's source)


@dataclass(frozen=True)
class FakeData:
    """An evaluation data set: its identity and row count; `error` makes it unreadable."""

    digest: str = "d0"
    rows: int = 1000
    error: str | None = None
    hint: str = ""


@dataclass
class FakeEvidence:
    """Run metrics by run id, models by URI (`dev:models:/m/3` for a version of registry dev, as
    the source of a copy), data sets by the path the file names, hook digests by reference."""

    runs: dict[str, dict[str, float]] = field(default_factory=dict)
    models: dict[str, FakeModel] = field(default_factory=dict)
    data: dict[str, FakeData] = field(default_factory=dict)
    hooks: dict[str, str] = field(default_factory=dict)  # prepare hook -> its file's digest
    calls: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)  # model URIs, in the order they were loaded

    @classmethod
    def from_data(cls, doc: dict[str, Any] | None) -> FakeEvidence:
        """A case file's `evidence:` mapping (runs, models, data) -> FakeEvidence."""
        doc = doc or {}
        return cls(
            runs={k: dict(v) for k, v in (doc.get("runs") or {}).items()},
            models={k: FakeModel(**v) for k, v in (doc.get("models") or {}).items()},
            data={k: FakeData(**v) for k, v in (doc.get("data") or {}).items()},
            hooks={k: str(v) for k, v in (doc.get("hooks") or {}).items()},
        )

    @property
    def loads(self) -> int:
        """How many models were loaded: 0 when every verdict came from the cache."""
        return len(self.loaded)

    def _model(self, side: Side) -> FakeModel:
        name = _name(side)
        model = self.models.get(name)
        if model is None or model.error is not None:
            why = model.error if model is not None else "no such model"
            raise GateError(
                f"cannot load the model {side.uri}: {why}",
                "check that its artifacts exist and that its library versions match this environment",
            )
        if name not in self.loaded:  # loaded at most once, as MlflowEvidence does
            self.loaded.append(name)
        return model

    def _data(self, data: str) -> FakeData:
        found = self.data.get(data)
        if found is None:
            raise GateError(f"no evaluation data at {data}", "check the path")
        if found.error is not None:
            raise GateError(found.error, found.hint)
        return found

    def run_metric(self, side: Side, key: str) -> float | None:
        run_id = side.run_id
        if run_id is None and side.registry is not None:  # asked of the side's registry
            found = self.models.get(_name(side))
            run_id = found.run_id if found else None
        self.calls.append(f"run_metric {run_id} {key}")
        if not run_id:
            raise GateError("the version has no source run, so it has no run metrics")
        if run_id not in self.runs:
            raise GateError(f"cannot read run {run_id}: RESOURCE_DOES_NOT_EXIST")
        return self.runs[run_id].get(key)

    def model_size_mb(self, side: Side) -> float:
        self.calls.append(f"model_size_mb {_name(side)}")
        return self._model(side).size_mb

    def has_signature(self, side: Side) -> bool:
        self.calls.append(f"has_signature {_name(side)}")
        return self._model(side).signature

    def data_digest(self, data: str, folder: Path) -> str:
        self.calls.append(f"data_digest {data}")
        return self._data(data).digest

    def hook_digest(self, ref: str, folder: Path) -> str:
        self.calls.append(f"hook_digest {ref}")
        if ref not in self.hooks:
            raise GateError(f"prepare hook {ref} not found", "hooks are Python files")
        return self.hooks[ref]

    def evaluate(
        self,
        spec: EvaluateSpec,
        folder: Path,
        candidate: Side,
        baseline: Side | None,
        latency_rows: int | None,
    ) -> Evaluation:
        against = f" vs {_name(baseline)}" if baseline else ""
        timed = f" timing {latency_rows} rows" if latency_rows else ""
        self.calls.append(f"evaluate {_name(candidate)}{against} on {spec.data}{timed}")
        data = self._data(spec.data)
        sides = {"candidate": self._model(candidate)}
        if baseline is not None:
            sides["baseline"] = self._model(baseline)
        latency: dict[str, float] = {}
        for name, model in sides.items():
            for q, value in (("p50", model.p50_ms), ("p95", model.p95_ms)):
                if latency_rows and value is not None:
                    latency[f"{name}_{q}_ms"] = value
        wanted = set(spec.metrics)
        return Evaluation(
            rows=data.rows,
            candidate={k: v for k, v in sides["candidate"].metrics.items() if k in wanted},
            baseline=(
                {k: v for k, v in sides["baseline"].metrics.items() if k in wanted}
                if "baseline" in sides
                else None
            ),
            latency_ms=latency,
        )


def _name(side: Side) -> str:
    """`models:/m/3` in the planned registry, `dev:models:/m/3` in registry dev."""
    return f"{side.registry}:{side.uri}" if side.registry else side.uri
