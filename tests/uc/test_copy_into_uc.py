"""copy_from into Unity Catalog, through MLflow's own databricks-uc client against the fake
(tests/uc/fake_uc.py): a version of a self-hosted registry whose artifacts are on local disk
(a SQLite registry with a `file:` artifact root) copied into `prod.ml.*`. The copy loads from UC
and predicts exactly as the source; every file of the source is still there, byte for byte
(MLflow's UC client deletes a local folder it downloads itself: tests/uc/test_local_source.py);
the copy's run lives in the workspace's tracking server under a workspace path; a second copy
registers nothing; an unsigned source is told apart before anything is copied."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlflow_gitops.record import COPIES_WORKSPACE_EXPERIMENT, COPY_REGISTRY_TAG, COPY_RUN_TAG
from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry
from mlflow_gitops.settings import registry_identity
from tests.integration.mlflow_helpers import client
from tests.uc.adapter import open_uc_adapter
from tests.uc.harness import UcWorld

pytestmark = [pytest.mark.integration]

X = np.arange(24, dtype=float).reshape(8, 3)


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _local_source(folder: Path, *, signed: bool) -> tuple[str, Path, str, int, str]:
    """A SQLite registry with its artifacts on local disk, holding a scikit-learn model (with or
    without a signature) registered as version 1: (uri, artifacts, model, version, run id)."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    uri = f"sqlite:///{folder}/dev.db"
    artifacts = folder / "dev-artifacts"
    experiment = client(uri).create_experiment("dev", artifact_location=artifacts.as_uri())
    model = LinearRegression().fit(X, X @ np.array([1.0, 2.0, 3.0]) + 0.5)
    signature = infer_signature(X, model.predict(X)) if signed else None
    run = client(uri).create_run(experiment)
    name = "taxi-local"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        # the run's own experiment active: an earlier test may have left another one active
        mlflow.set_experiment(experiment_id=experiment)
        with mlflow.start_run(run_id=run.info.run_id):
            mlflow.log_param("features", 3)
            mlflow.log_metric("rmse", 0.0)
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=signature,
                serialization_format="cloudpickle",
                pip_requirements=["scikit-learn", "cloudpickle"],
            )
        mv = mlflow.register_model(info.model_uri, name)
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    return uri, artifacts, name, int(mv.version), run.info.run_id


def test_a_local_source_copied_into_uc_predicts_as_the_source_and_keeps_its_files(
    uc_env: UcWorld, tmp_path: Path
) -> None:
    uri, artifacts, name, version, run_id = _local_source(tmp_path, signed=True)
    location = client(uri).get_model_version_download_uri(name, str(version))
    assert location.startswith(artifacts.as_uri())  # the source's files are on local disk
    before = _hashes(artifacts)
    src = MlflowRegistry(uri)
    dest = open_uc_adapter(*uc_env.uris("prod"))
    assert dest.requires_signature
    described = src.describe_source(name, version)
    assert described.ok, described.problem
    assert described.unsigned == ""

    served = f"prod.ml.copied_{uuid.uuid4().hex[:6]}"
    copied = dest.copy_version(src, name, version, served)

    assert _hashes(artifacts) == before  # every file of the source still there, byte for byte
    uc = uc_env.client()
    mv = uc.get_model_version(served, str(copied.version))
    assert mv.tags[COPY_RUN_TAG] == run_id
    assert mv.tags[COPY_REGISTRY_TAG] == registry_identity(uri)
    # the copy's run is in the workspace's tracking server, under a workspace path
    run = uc.get_run(mv.run_id)
    assert uc.get_experiment(run.info.experiment_id).name == COPIES_WORKSPACE_EXPERIMENT
    assert run.data.params == {"features": "3"}
    # loaded from UC, it predicts exactly as the source
    import mlflow

    tracking, registry = uc_env.uris("prod")
    mlflow.set_tracking_uri(uri)
    expected: Any = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(X)
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)
    try:
        got: Any = mlflow.pyfunc.load_model(f"models:/{served}/{copied.version}").predict(X)
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    assert np.array_equal(np.asarray(got), np.asarray(expected))
    assert _hashes(artifacts) == before
    # found again by its provenance: nothing registered a second time
    assert dest.copy_version(src, name, version, served).version == copied.version
    assert [v.version for v in uc.search_model_versions(f"name='{served}'")] == [mv.version]


def test_an_unsigned_source_is_told_apart_before_a_copy_into_uc(
    uc_env: UcWorld, tmp_path: Path
) -> None:
    uri, _, name, version, _ = _local_source(tmp_path, signed=False)
    described = MlflowRegistry(uri).describe_source(name, version)
    assert described.ok, described.problem
    assert described.unsigned == "the model was logged without a signature"
    assert open_uc_adapter(*uc_env.uris("prod")).requires_signature
    assert not MlflowRegistry(uri).requires_signature  # a self-hosted registry takes it
