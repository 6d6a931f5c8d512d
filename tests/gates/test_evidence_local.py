"""The local engine's pass (gates/evidence.ModelEvidence.evaluate) over models in memory: a model
that cannot load fails before the data is read; and MLflow artifacts on this machine are read
where they are (registry/mlflow/evidence.in_place), never copied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlflow_gitops.gates.data import STREAM_ROWS
from mlflow_gitops.gates.evidence import ModelEvidence
from mlflow_gitops.gates.port import GateError, Side
from mlflow_gitops.registry.mlflow.evidence import in_place
from mlflow_gitops.spec.model import EvaluateSpec

ROWS = 2 * STREAM_ROWS + 1_234  # three batches


class Linear:
    """A model: w . x + b over the frame's columns, in float64."""

    def __init__(self, w: list[float], b: float) -> None:
        self.w, self.b = np.asarray(w), b

    def predict(self, x: Any) -> Any:
        return np.asarray(x, dtype=float) @ self.w + self.b


class Models(ModelEvidence):
    """Models by URI; a URI not among them fails to load."""

    def __init__(self, models: dict[str, Any]) -> None:
        super().__init__()
        self.models = models

    def run_metric(self, side: Side, key: str) -> float | None:
        return None

    def has_signature(self, side: Side) -> bool:
        return True

    def download(self, side: Side, path: str = "", doing: str = "download") -> Path:
        raise GateError("no files here")

    def load_model(self, side: Side) -> Any:
        if side.uri not in self.models:
            raise GateError(f"cannot load the model {side.uri}: no such model")
        return self.models[side.uri]

    def load_preprocessor(self, side: Side, artifact: str) -> tuple[Any, bytes]:
        raise GateError("no preprocessor here")


@pytest.fixture
def holdout(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(ROWS, 2))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": x @ [0.3, -1.2] + rng.normal(size=ROWS)})
    frame.to_parquet(tmp_path / "holdout.parquet", row_group_size=50_000, index=False)
    return tmp_path


def spec(data: str = "holdout.parquet", prepare: str | None = None) -> EvaluateSpec:
    metrics = {m: {"threshold": 1e9} for m in ("rmse", "mae", "r2")}
    target = None if prepare else "y"
    return EvaluateSpec.model_validate(
        {"data": data, "target": target, "prepare": prepare, "metrics": metrics}
    )


CANDIDATE, BASELINE = Side("models:/m/2", "r2"), Side("models:/m/1", "r1")
MODELS = {CANDIDATE.uri: Linear([0.3, -1.2], 0.1), BASELINE.uri: Linear([-1.0, 0.0], 0.0)}


def test_a_model_that_cannot_load_fails_first_whatever_the_data(holdout: Path) -> None:
    evidence = Models({CANDIDATE.uri: MODELS[CANDIDATE.uri]})
    for data in ("holdout.parquet", "missing.parquet"):
        with pytest.raises(GateError, match="cannot load the model models:/m/1: no such model"):
            evidence.evaluate(spec(data), holdout, CANDIDATE, BASELINE, None)


def test_data_and_hook_failures_are_the_gate_s_error(holdout: Path) -> None:
    (holdout / "hooks.py").write_text(
        "def broken(df):\n    raise KeyError('fare')\n", encoding="utf-8"
    )
    evidence = Models(MODELS)
    with pytest.raises(
        GateError, match=r"cannot read the evaluation data \S*missing.parquet: no such file"
    ):
        evidence.evaluate(spec("missing.parquet"), holdout, CANDIDATE, BASELINE, None)
    with pytest.raises(GateError, match=r"prepare hook hooks:broken failed: KeyError: 'fare'"):
        evidence.evaluate(spec(prepare="hooks:broken"), holdout, CANDIDATE, BASELINE, None)


def test_local_artifacts_are_read_in_place_and_other_locations_downloaded(tmp_path: Path) -> None:
    model = tmp_path / "artifacts" / "model"
    (model / "sub").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("not an artifact", encoding="utf-8")
    assert in_place(model.as_uri()) == model
    assert in_place(model.as_uri(), "MLmodel") == model
    assert in_place(f"file://localhost{model}", "sub") == model
    assert in_place(model.as_uri(), "../../secret.txt") is None  # outside: MLflow's download
    assert in_place(model.as_uri(), "missing.pkl") is None
    assert in_place(str(model)) is None  # a plain path: as MLflow resolves it
    for remote in ("s3://bucket/model", "mlflow-artifacts:/1/abc/artifacts", "runs:/abc/model"):
        assert in_place(remote) is None
