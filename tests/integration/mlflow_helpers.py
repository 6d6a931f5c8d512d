"""Real models in a real registry: log small scikit-learn regressors and register them."""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    rmse: float


def log_regressor(
    uri: str, kind: str = "linear", seed: int = 0, experiment: str | None = None
) -> LoggedRun:
    """Train a real scikit-learn regressor on a small taxi-shaped problem and log it to `uri`."""
    import mlflow
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_squared_error
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(seed)
    n = 400
    dist = rng.gamma(2.0, 1.5, n)
    pu_do = [
        f"{a}_{b}" for a, b in zip(rng.integers(1, 20, n), rng.integers(1, 20, n), strict=True)
    ]
    y = 4 * dist + rng.normal(0, 2, n) + 3
    dv = DictVectorizer()
    x = dv.fit_transform(
        [{"PU_DO": p, "trip_distance": d} for p, d in zip(pu_do, dist, strict=True)]
    )
    model = LinearRegression() if kind == "linear" else DecisionTreeRegressor(max_depth=4)
    model.fit(x, y)
    rmse = float(mean_squared_error(y, model.predict(x)) ** 0.5)
    mlflow.set_tracking_uri(uri)
    found = mlflow.set_experiment(experiment or f"tests-{uuid.uuid4().hex[:8]}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run(experiment_id=found.experiment_id) as run:
            mlflow.log_metric("rmse", rmse)
            mlflow.set_tag("model_type", kind)
            mlflow.sklearn.log_model(
                model,
                name="model",
                serialization_format="cloudpickle",
                pip_requirements=["scikit-learn", "cloudpickle"],  # skips slow inference
            )
    return LoggedRun(run.info.run_id, rmse)


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
