"""Train the MLOps-course duration regressors on taxi months and log them to MLflow.

Three scikit-learn models (linear regression, gradient boosting, a large random forest) are
fitted on ``PU_DO`` + ``trip_distance`` one-hot features from a ``DictVectorizer``.  Each gets
its own MLflow run with params, the ``rmse``/``training_time``/``model_size_mb`` metrics, a
``model_type`` tag, the model (``name="model"``, cloudpickle) and the fitted vectorizer as the
run artifact ``preprocessor/preprocessor.b``.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import mlflow
import mlflow.sklearn
import numpy as np
import scipy
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression
from sklearn.metrics import root_mean_squared_error

from mlflow_gitops.demo.taxi import prepare, read_trips

__all__ = ["MODEL_FACTORIES", "TrainedRun", "register_runs", "train_and_log", "train_or_reuse"]

MODEL_ARTIFACT = "model"
PREPROCESSOR_DIR = "preprocessor"
PREPROCESSOR_FILE = "preprocessor.b"

MODEL_FACTORIES: dict[str, Callable[[], Any]] = {
    "LinearRegression": LinearRegression,
    "GradientBoostingRegressor": lambda: GradientBoostingRegressor(
        n_estimators=50, max_depth=5, learning_rate=0.1, random_state=42
    ),
    "RandomForestRegressor": lambda: RandomForestRegressor(
        n_estimators=100, max_depth=20, min_samples_leaf=3, n_jobs=2, random_state=42
    ),
}
"""Model type (the ``model_type`` tag) -> factory, in training and registration order."""

_ENV_TRACKING = "MLFLOW_TRACKING_URI"
_ENV_REGISTRY = "MLFLOW_REGISTRY_URI"


@dataclass(frozen=True)
class TrainedRun:
    """One logged training run: its id, model type, metrics and model URI."""

    run_id: str
    model_type: str
    rmse: float
    training_time_s: float
    model_size_mb: float
    model_uri: str


@contextmanager
def _mlflow_uri(uri: str) -> Iterator[None]:
    """Point MLflow's global tracking and registry URIs at ``uri``; restore both on exit."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_tracking = getattr(tracking_utils, "_tracking_uri", None)
    saved_registry = getattr(registry_utils, "_registry_uri", None)
    saved_env = {key: os.environ.get(key) for key in (_ENV_TRACKING, _ENV_REGISTRY)}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        # None is accepted at runtime (it means "unset"), although the stubs say str.
        mlflow.set_tracking_uri(cast(str, saved_tracking))
        mlflow.set_registry_uri(cast(str, saved_registry))
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    """Return the id of experiment ``name``, creating (or restoring) it when needed."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return str(client.create_experiment(name, artifact_location=artifact_location))
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


def _pip_requirements() -> list[str]:
    """Pinned requirements of a cloudpickled scikit-learn model.

    Passing them explicitly skips MLflow's requirement inference, which loads the model in a
    subprocess and costs several seconds per ``log_model``.
    """
    defaults: list[str] = mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True)
    return [*defaults, f"numpy=={np.__version__}", f"scipy=={scipy.__version__}"]


def _log_params(model: Any, extra: dict[str, Any]) -> None:
    params = {key: value for key, value in model.get_params().items() if value is not None}
    mlflow.log_params({**extra, **params})


def train_and_log(
    train_path: str | Path,
    valid_path: str | Path,
    experiment: str,
    tracking_uri: str,
    artifact_location: str | None = None,
) -> list[TrainedRun]:
    """Train the three duration models on one month, score on another, log one run each."""
    x_train_dicts, y_train = prepare(read_trips(train_path))
    x_valid_dicts, y_valid = prepare(read_trips(valid_path))
    vectorizer = DictVectorizer()
    x_train = vectorizer.fit_transform(x_train_dicts)
    x_valid = vectorizer.transform(x_valid_dicts)
    common = {
        "train_path": str(train_path),
        "valid_path": str(valid_path),
        "train_rows": x_train.shape[0],
        "valid_rows": x_valid.shape[0],
        "n_features": x_train.shape[1],
    }
    requirements = _pip_requirements()

    runs: list[TrainedRun] = []
    with _mlflow_uri(tracking_uri), tempfile.TemporaryDirectory() as tmp:
        preprocessor = Path(tmp) / PREPROCESSOR_FILE
        with preprocessor.open("wb") as f_out:
            pickle.dump(vectorizer, f_out)
        client = MlflowClient(tracking_uri=tracking_uri)
        experiment_id = _experiment_id(client, experiment, artifact_location)

        for model_type, factory in MODEL_FACTORIES.items():
            model = factory()
            started = time.perf_counter()
            model.fit(x_train, y_train)
            training_time = time.perf_counter() - started
            rmse = float(root_mean_squared_error(y_valid, model.predict(x_valid)))
            size_mb = len(pickle.dumps(model)) / (1024 * 1024)  # MiB, as pickled
            # infer_signature accepts the sparse CSR matrix: a float64 tensor (-1, n_features).
            signature = infer_signature(x_valid[:5], model.predict(x_valid[:5]))

            with mlflow.start_run(experiment_id=experiment_id, run_name=model_type) as run:
                mlflow.set_tag("model_type", model_type)
                _log_params(model, {"model_type": model_type, **common})
                mlflow.log_metrics(
                    {"rmse": rmse, "training_time": training_time, "model_size_mb": size_mb}
                )
                mlflow.sklearn.log_model(
                    model,
                    name=MODEL_ARTIFACT,
                    serialization_format="cloudpickle",
                    signature=signature,
                    pip_requirements=requirements,
                )
                mlflow.log_artifact(str(preprocessor), artifact_path=PREPROCESSOR_DIR)
                run_id = str(run.info.run_id)

            runs.append(
                TrainedRun(
                    run_id=run_id,
                    model_type=model_type,
                    rmse=rmse,
                    training_time_s=training_time,
                    model_size_mb=size_mb,
                    model_uri=f"runs:/{run_id}/{MODEL_ARTIFACT}",
                )
            )
    return runs


def register_runs(runs: Sequence[TrainedRun], model_name: str, tracking_uri: str) -> list[int]:
    """Register each run's model as the next version of ``model_name``; return the versions."""
    versions: list[int] = []
    with _mlflow_uri(tracking_uri):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        try:
            client.get_registered_model(model_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            client.create_registered_model(model_name)
        for run in runs:
            version = mlflow.register_model(f"runs:/{run.run_id}/{MODEL_ARTIFACT}", model_name)
            versions.append(int(version.version))
    return versions


def train_or_reuse(
    model_name: str,
    tracking_uri: str,
    months: tuple[Path, Path],
    artifacts: Path,
    say: Callable[[str], None],
    step: str,
    where: str,
) -> None:
    """The demos' model step: train the three regressors on ``months`` (train, valid) into
    ``tracking_uri`` and register them as versions 1-3 of ``model_name``, unless the model holds
    three versions already (a second run of a demo reuses them; ``--reset`` starts over)."""
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry

    existing = MlflowRegistry(tracking_uri).read([model_name]).models.get(model_name)
    if existing is not None and len(existing.versions) >= 3:
        count = len(existing.versions)
        say(
            f"{step}. Models: {where} already holds {count} versions of {model_name}"
            " (--reset to retrain)"
        )
        return
    say(f"{step}. Models: train three regressors the course's way into {where} (versions 1-3)")
    runs = train_and_log(
        months[0],
        months[1],
        experiment="nyc-taxi-duration",
        tracking_uri=tracking_uri,
        artifact_location=artifacts.as_uri(),
    )
    for run, version in zip(runs, register_runs(runs, model_name, tracking_uri), strict=True):
        print(
            f"  v{version}: {run.model_type:<26} rmse {run.rmse:6.3f}  "
            f"trained in {run.training_time_s:5.1f} s  {run.model_size_mb:6.2f} MB  run {run.run_id}"
        )
