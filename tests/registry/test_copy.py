"""Promotion across registries on real servers: dev (`mlflow server` on SQLite) and prod (`mlflow
server` on PostgreSQL), a real scikit-learn model with its DictVectorizer logged into dev, copied,
loaded from the copy and compared prediction for prediction with the source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlflow_gitops.credentials import Credentials
from mlflow_gitops.errors import RegistryError
from mlflow_gitops.record import (
    COPIES_EXPERIMENT,
    COPY_MODEL_TAG,
    COPY_REGISTRY_TAG,
    COPY_RUN_TAG,
    COPY_VERSION_TAG,
    SourceRef,
)
from mlflow_gitops.registry.copy import find_copies
from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry
from mlflow_gitops.settings import registry_identity
from tests.integration.mlflow_helpers import client
from tests.servers import MlflowServer, free_port
from tests.two_registries import Trained, features, predict, train_into

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "taxi-duration"


@pytest.fixture(scope="module")
def source(dev: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The demo's gradient-boosting run (model, DictVectorizer, params, metrics) as version 1."""
    trained = train_into(dev.uri, MODEL, tmp_path_factory.mktemp("data"))
    client(dev.uri).set_model_version_tag(MODEL, str(trained.version), "validated_by", "alice")
    return trained


def test_a_copy_to_another_server_predicts_like_the_source(
    dev: MlflowServer, prod: MlflowServer, source: Trained, tmp_path: Path
) -> None:
    src = MlflowRegistry(dev.uri, Credentials())
    dest = MlflowRegistry(prod.uri, Credentials())

    described = src.describe_source(MODEL, source.version)
    assert described.ok, described.problem
    assert described.run_id == source.run_id
    assert described.source.startswith("models:/m-")  # an MLflow 3 logged model

    number = dest.copy_version(src, MODEL, source.version, "taxi-prod").version

    copied = client(prod.uri).get_model_version("taxi-prod", str(number))
    assert copied.tags[COPY_REGISTRY_TAG] == registry_identity(dev.uri) == dev.uri
    assert (copied.tags[COPY_MODEL_TAG], copied.tags[COPY_VERSION_TAG]) == (
        MODEL,
        str(source.version),
    )
    assert copied.tags[COPY_RUN_TAG] == source.run_id
    assert copied.tags["validated_by"] == "alice"  # the version's own tags travel with it
    # the copy's run lives in prod and carries the source run's id, params and metrics
    assert copied.run_id
    assert copied.run_id != source.run_id
    run, original = client(prod.uri).get_run(copied.run_id), client(dev.uri).get_run(source.run_id)
    assert run.data.tags[COPY_RUN_TAG] == source.run_id
    assert run.data.params == original.data.params
    assert run.data.metrics == original.data.metrics
    assert run.data.tags["model_type"] == "GradientBoostingRegressor"
    assert client(prod.uri).get_experiment(run.info.experiment_id).name == COPIES_EXPERIMENT

    # the preprocessor comes from the copy's run in prod; the predictions are the source's
    x = features(prod.uri, copied.run_id, source.valid, tmp_path)
    expected = predict(dev.uri, MODEL, source.version, x)
    assert len(expected) > 1000
    assert np.array_equal(predict(prod.uri, "taxi-prod", number, x), expected)

    # matched by provenance: a second copy registers nothing
    ref = SourceRef(dev.uri, MODEL, source.version)
    state = dest.read(["taxi-prod"]).models["taxi-prod"]
    assert find_copies(state, [ref]) == {ref: number}
    assert dest.copy_version(src, MODEL, source.version, "taxi-prod").version == number
    assert [v.version for v in dest.read(["taxi-prod"]).models["taxi-prod"].versions] == [number]


def test_a_copy_on_the_same_server_uses_the_registry_copy(
    dev: MlflowServer, source: Trained, tmp_path: Path
) -> None:
    registry = MlflowRegistry(dev.uri)
    number = registry.copy_version(registry, MODEL, source.version, "taxi-same").version

    copied = client(dev.uri).get_model_version("taxi-same", str(number))
    assert copied.source == f"models:/{MODEL}/{source.version}"  # no file was copied
    assert copied.run_id == source.run_id
    assert copied.tags[COPY_REGISTRY_TAG] == registry_identity(dev.uri)
    assert copied.tags[COPY_VERSION_TAG] == str(source.version)
    x = features(dev.uri, source.run_id, source.valid, tmp_path)
    assert np.array_equal(
        predict(dev.uri, "taxi-same", number, x), predict(dev.uri, MODEL, source.version, x)
    )
    assert registry.copy_version(registry, MODEL, source.version, "taxi-same").version == number
    assert len(registry.read(["taxi-same"]).models["taxi-same"].versions) == 1


def test_a_missing_source_version_is_a_clear_error_and_nothing_is_made(
    dev: MlflowServer, prod: MlflowServer, source: Trained
) -> None:
    src, dest = MlflowRegistry(dev.uri), MlflowRegistry(prod.uri)
    described = src.describe_source(MODEL, 99)
    assert not described.ok
    assert described.problem == f"version 99 of model '{MODEL}' does not exist at {dev.uri}"
    assert "does not exist" in src.describe_source("no-such-model", 1).problem
    with pytest.raises(RegistryError, match=f"version 99 of model '{MODEL}' does not exist at"):
        dest.copy_version(src, MODEL, 99, "taxi-never")
    assert dest.read(["taxi-never"]).models == {}


def test_a_source_without_model_files_is_told_before_copying(
    dev: MlflowServer, source: Trained
) -> None:
    run = client(dev.uri).get_run(source.run_id)
    empty = f"{run.info.artifact_uri}/nothing-here"
    client(dev.uri).create_registered_model("taxi-empty")
    client(dev.uri).create_model_version("taxi-empty", empty, run_id=source.run_id)

    described = MlflowRegistry(dev.uri).describe_source("taxi-empty", 1)
    assert described.problem == (
        f"the files of version 1 of model 'taxi-empty' at {dev.uri} cannot be read: "
        f"{empty} holds no MLmodel file"
    )


def test_an_unreachable_source_says_so(
    prod: MlflowServer, source: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    gone = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RegistryError, match=f"cannot read {MODEL}/1 at {gone}: the registry is"):
        MlflowRegistry(prod.uri).copy_version(MlflowRegistry(gone), MODEL, 1, "taxi-gone")


def test_copies_through_an_mlflow_2_22_server_keep_the_predictions(
    dev: MlflowServer, prod: MlflowServer, source: Trained, tmp_path: Path
) -> None:
    """dev (MLflow 3, a logged model) -> MLflow 2.22 -> prod: the second hop copies a model that
    lives inside its run, the way MLflow 2.x logs them."""
    from tests.mlflow2 import mlflow2_bin

    work = tmp_path / "mlflow2"
    with MlflowServer(f"sqlite:///{work}/mlflow.db", work, mlflow_bin=mlflow2_bin()) as old:
        middle = MlflowRegistry(old.uri)
        first = middle.copy_version(
            MlflowRegistry(dev.uri), MODEL, source.version, "taxi-v2"
        ).version
        described = middle.describe_source("taxi-v2", first)
        assert described.ok, described.problem
        assert "/artifacts/model" in described.source  # inside the copy's run
        last = (
            MlflowRegistry(prod.uri).copy_version(middle, "taxi-v2", first, "taxi-from-v2").version
        )
        x = features(old.uri, described.run_id or "", source.valid, tmp_path / "a")
        on_old = predict(old.uri, "taxi-v2", first, x)

    copied = client(prod.uri).get_model_version("taxi-from-v2", str(last))
    assert copied.tags[COPY_REGISTRY_TAG] == registry_identity(old.uri)
    assert copied.tags[COPY_RUN_TAG] == described.run_id
    x = features(prod.uri, copied.run_id, source.valid, tmp_path / "b")
    expected = predict(dev.uri, MODEL, source.version, x)
    assert np.array_equal(on_old, expected)
    assert np.array_equal(predict(prod.uri, "taxi-from-v2", last, x), expected)
