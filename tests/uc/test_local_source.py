"""MLflow 3.17.2's databricks-uc client deletes the source of a registration whose artifacts are
on local disk: `UcModelRegistryStore._local_model_dir`
(mlflow/store/_unity_catalog/registry/rest_store.py:883-909) downloads the source with
`mlflow.artifacts.download_artifacts` and, when `source` is not an existing local path, removes
the folder the download returned (`shutil.rmtree(local_model_dir)`, line 909). For a `file://`
URI, or a `runs:/` URI of a run whose artifacts are local, that folder is not a temporary copy:
`LocalArtifactRepository.download_artifacts` (mlflow/store/artifact/local_artifact_repo.py:247)
returns the source folder itself. A copy into UC must therefore hand the client a folder of its
own (a temporary copy), never the source's files.

These tests pin that behaviour against the fake, so a change in MLflow shows up here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.uc.harness import UcWorld

pytestmark = [pytest.mark.integration]


def _save_model(path: Path) -> None:
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    x = np.arange(12, dtype=float).reshape(6, 2)
    model = LinearRegression().fit(x, x.sum(axis=1))
    mlflow.sklearn.save_model(model, path, signature=infer_signature(x, model.predict(x)))


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_file_uri_source_is_deleted_by_the_registration(uc_env: UcWorld, tmp_path: Path) -> None:
    source = tmp_path / "model"
    _save_model(source)
    assert "MLmodel" in _files(source)
    client = uc_env.client()
    client.create_registered_model("prod.ml.from_file_uri")

    mv = client.create_model_version("prod.ml.from_file_uri", source=source.as_uri())

    assert mv.status == "READY"
    assert not source.exists(), "MLflow no longer deletes a file:// source: update the docs"


def test_a_plain_path_source_is_kept(uc_env: UcWorld, tmp_path: Path) -> None:
    """The same folder given as a path (os.path.exists(source) holds) is left alone."""
    source = tmp_path / "model"
    _save_model(source)
    before = _files(source)
    client = uc_env.client()
    client.create_registered_model("prod.ml.from_path")

    mv = client.create_model_version("prod.ml.from_path", source=str(source))

    assert mv.status == "READY"
    assert _files(source) == before


def test_a_local_registrys_version_is_deleted_by_the_registration(
    uc_env: UcWorld, tmp_path: Path
) -> None:
    """A version of a local registry (sqlite + ./mlruns, as a dev machine has), copied into UC
    the way a copy reads it: by `runs:/<run>/model` its files are kept (MLflow 3 downloads the
    logged model to a temporary folder), by its download URI (a file:// URI of the version's
    files: the logged model's folder, file:///.../models/m-.../artifacts) they are deleted."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    local = f"sqlite:///{tmp_path}/mlflow.db"
    artifacts = tmp_path / "mlruns"
    mlflow.set_tracking_uri(local)
    experiment = mlflow.create_experiment("local", artifact_location=artifacts.as_uri())
    x = np.arange(12, dtype=float).reshape(6, 2)
    model = LinearRegression().fit(x, x.sum(axis=1))
    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.sklearn.log_model(
            model, name="model", signature=infer_signature(x, model.predict(x))
        )
    dev = MlflowClient(tracking_uri=local, registry_uri=local)
    dev.create_registered_model("m")
    # as mlflow.register_model does: the logged model's URI and id
    dev_version = dev.create_model_version("m", source=info.model_uri, model_id=info.model_id)
    download_uri = dev.get_model_version_download_uri("m", dev_version.version)
    model_dir = Path(download_uri.removeprefix("file://"))
    before = _files(model_dir)
    assert "MLmodel" in before
    uc = MlflowClient(tracking_uri=local, registry_uri=uc_env.uris()[1])
    uc.create_registered_model("prod.ml.from_local_registry")

    by_run = uc.create_model_version(
        "prod.ml.from_local_registry", source=f"runs:/{run.info.run_id}/model"
    )
    assert by_run.status == "READY"
    assert _files(model_dir) == before

    by_uri = uc.create_model_version("prod.ml.from_local_registry", source=download_uri)
    assert by_uri.status == "READY"
    assert not model_dir.exists(), (
        "MLflow no longer deletes a local source on a UC registration: update the docs"
    )
    # the registered copy is whole: it loads from UC storage and predicts
    mlflow.set_registry_uri(uc_env.uris()[1])
    loaded = mlflow.pyfunc.load_model(f"models:/prod.ml.from_local_registry/{by_uri.version}")
    np.testing.assert_allclose(loaded.predict(x), model.predict(x))
