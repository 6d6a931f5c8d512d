"""Train a small taxi-shaped scikit-learn regressor and log it as a run's model `model`.

Runs in this interpreter (MLflow 3) or as a script under an MLflow 2.x venv's Python, since MLflow 3
clients log models through logged-model endpoints that MLflow 2.x servers lack:
`python train_regressor.py URI KIND SEED EXPERIMENT` prints {"run_id": ..., "rmse": ...}.
Imports nothing from this repository."""

from __future__ import annotations

import json
import sys
import warnings


def train_and_log(uri: str, kind: str, seed: int, experiment: str) -> tuple[str, float]:
    """Fit a linear model or a small tree on generated trips, log rmse, model_type and the model."""
    import mlflow
    import numpy as np
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
    found = mlflow.set_experiment(experiment)
    # MLflow 3 names the model `name=`; 2.x only knows `artifact_path=`
    where = (
        {"name": "model"}
        if int(mlflow.__version__.split(".")[0]) >= 3
        else {"artifact_path": "model"}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run(experiment_id=found.experiment_id) as run:
            mlflow.log_metric("rmse", rmse)
            mlflow.set_tag("model_type", kind)
            mlflow.sklearn.log_model(
                model,
                serialization_format="cloudpickle",
                pip_requirements=["scikit-learn", "cloudpickle"],  # skips slow inference
                **where,
            )
    return run.info.run_id, rmse


if __name__ == "__main__":
    uri, kind, seed, experiment = sys.argv[1:5]
    run_id, rmse = train_and_log(uri, kind, int(seed), experiment)
    print(json.dumps({"run_id": run_id, "rmse": rmse}))
