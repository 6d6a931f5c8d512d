"""Real models in a real registry: log small scikit-learn regressors and register them."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.integration.train_regressor import train_and_log


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    rmse: float


# tracking URIs served by MLflow 2.x (the fixtures that start such servers add theirs): runs are
# logged there by that MLflow's own Python, since an MLflow 3 client cannot log a model to them
MLFLOW2_PYTHONS: dict[str, str] = {}


def log_regressor(
    uri: str, kind: str = "linear", seed: int = 0, experiment: str | None = None
) -> LoggedRun:
    """Train a real scikit-learn regressor on a small taxi-shaped problem and log it to `uri`."""
    experiment = experiment or f"tests-{uuid.uuid4().hex[:8]}"
    python = MLFLOW2_PYTHONS.get(uri)
    if python is None:
        run_id, rmse = train_and_log(uri, kind, seed, experiment)
        return LoggedRun(run_id, rmse)
    done = subprocess.run(
        [python, str(Path(__file__).with_name("train_regressor.py")), uri, kind, str(seed), experiment],
        capture_output=True, text=True, check=False, timeout=600,
        env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")},
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"logging a run with {python} failed:\n{done.stderr[-3000:]}")
    logged = json.loads(done.stdout.strip().splitlines()[-1])
    return LoggedRun(str(logged["run_id"]), float(logged["rmse"]))


def register(uri: str, name: str, run_id: str) -> int:
    """Register the run's model as a new version, the way a training pipeline would."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return int(mlflow.register_model(f"runs:/{run_id}/model", name).version)


def client(uri: str):  # type: ignore[no-untyped-def]
    """An MlflowClient for direct checks and hand-made drift."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)
