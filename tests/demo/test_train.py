"""Tests for training the course regressors and logging/registering them in MLflow."""

from __future__ import annotations

import os
import pickle
from dataclasses import FrozenInstanceError
from pathlib import Path

import mlflow
import mlflow.models
import mlflow.sklearn
import pytest
from mlflow.tracking import MlflowClient
from sklearn.feature_extraction import DictVectorizer

from mlflow_gitops.demo import taxi
from mlflow_gitops.demo.train import TrainedRun, register_runs, train_and_log

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 3_000
EXPERIMENT = "nyc-taxi-duration"
MODEL_TYPES = ["LinearRegression", "GradientBoostingRegressor", "RandomForestRegressor"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-train")


@pytest.fixture(scope="module")
def tracking_uri(workdir: Path) -> str:
    return f"sqlite:///{workdir}/mlflow.db"


@pytest.fixture(scope="module")
def trained(workdir: Path, tracking_uri: str) -> list[TrainedRun]:
    train_path, valid_path, _ = taxi.write_months(workdir / "data", rows=ROWS)
    env_before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    runs = train_and_log(
        train_path,
        valid_path,
        experiment=EXPERIMENT,
        tracking_uri=tracking_uri,
        artifact_location=str(workdir / "artifacts"),
    )
    env_after = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    assert env_after == env_before  # the global MLflow URIs are restored
    return runs


def test_three_runs_with_metrics_and_tags(trained: list[TrainedRun], tracking_uri: str) -> None:
    assert [run.model_type for run in trained] == MODEL_TYPES
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    for run in trained:
        assert run.rmse > 0
        assert run.training_time_s >= 0
        assert run.model_size_mb > 0
        assert run.model_uri == f"runs:/{run.run_id}/model"
        logged = client.get_run(run.run_id)
        assert logged.info.experiment_id == experiment.experiment_id
        assert logged.data.tags["model_type"] == run.model_type
        metrics = logged.data.metrics
        assert metrics["rmse"] == pytest.approx(run.rmse)
        assert metrics["training_time"] == pytest.approx(run.training_time_s)
        assert metrics["model_size_mb"] == pytest.approx(run.model_size_mb)
        assert logged.data.params["model_type"] == run.model_type
        assert int(logged.data.params["train_rows"]) > 0.9 * ROWS
    with pytest.raises(FrozenInstanceError):
        trained[0].rmse = 0.0  # type: ignore[misc]


def test_experiment_uses_artifact_location(
    trained: list[TrainedRun], tracking_uri: str, workdir: Path
) -> None:
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    assert str(workdir / "artifacts") in experiment.artifact_location
    for run in trained:
        assert str(workdir / "artifacts") in client.get_run(run.run_id).info.artifact_uri


def test_preprocessor_artifact_unpickles_to_dict_vectorizer(
    trained: list[TrainedRun], tracking_uri: str, tmp_path: Path
) -> None:
    client = MlflowClient(tracking_uri=tracking_uri)
    for run in trained:
        dst = tmp_path / run.run_id
        dst.mkdir()
        local = client.download_artifacts(run.run_id, "preprocessor/preprocessor.b", str(dst))
        with Path(local).open("rb") as f_in:
            vectorizer = pickle.load(f_in)
        assert isinstance(vectorizer, DictVectorizer)
        matrix = vectorizer.transform([{"PU_DO": "74_75", "trip_distance": 2.5}])
        assert matrix.shape == (1, len(vectorizer.feature_names_))


def test_logged_models_predict_with_the_preprocessor(
    trained: list[TrainedRun],
    tracking_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, _ = taxi.prepare(taxi.generate_month(2021, 3, 200))
    client = MlflowClient(tracking_uri=tracking_uri)
    local = client.download_artifacts(
        trained[0].run_id, "preprocessor/preprocessor.b", str(tmp_path)
    )
    with Path(local).open("rb") as f_in:
        vectorizer = pickle.load(f_in)
    features = vectorizer.transform(x)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)  # runs:/ URIs resolve through it
    for run in trained:
        model = mlflow.sklearn.load_model(run.model_uri)
        assert model.predict(features).shape == (len(x),)
        info = mlflow.models.get_model_info(run.model_uri)
        assert info.signature is not None
        spec = info.signature.inputs.to_dict()[0]["tensor-spec"]
        assert tuple(spec["shape"]) == (-1, len(vectorizer.feature_names_))


def test_random_forest_beats_linear_regression(trained: list[TrainedRun]) -> None:
    rmse = {run.model_type: run.rmse for run in trained}
    assert rmse["RandomForestRegressor"] < rmse["LinearRegression"]
    assert all(value < 15 for value in rmse.values())


def test_register_runs_creates_versions_in_order(
    trained: list[TrainedRun], tracking_uri: str
) -> None:
    assert register_runs(trained, "nyc-taxi-duration", tracking_uri) == [1, 2, 3]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    for version, run in zip((1, 2, 3), trained, strict=True):
        model_version = client.get_model_version("nyc-taxi-duration", str(version))
        assert model_version.run_id == run.run_id
    # A second registration appends versions to the existing registered model.
    assert register_runs(trained[:1], "nyc-taxi-duration", tracking_uri) == [4]
