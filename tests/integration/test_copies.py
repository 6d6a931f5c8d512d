"""Copies across registries on real registries: dev (`mlflow server` on SQLite, or a SQLite
registry whose artifacts are on local disk) and prod (`mlflow server` on PostgreSQL).

- a copy is found again when dev is reached under another host name (127.0.0.1, then
  localhost): matched by the source run's id, nothing copied twice;
- an apply interrupted after the copy's run was written (before the version was registered, or
  during the upload) is finished by the next apply without a second copy, and both say what they
  do with the run left behind;
- nothing lost: a copy from a registry whose files are on local disk leaves every file there,
  byte for byte, even when the destination store deletes the folder it registers from the way
  MLflow's Unity Catalog store does (its real code runs in front of the destination's)."""

from __future__ import annotations

import hashlib
import shutil
import textwrap
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlflow_gitops.record import (
    COPIES_EXPERIMENT,
    COPY_MODEL_PATH_TAG,
    COPY_REGISTRY_TAG,
    COPY_RUN_TAG,
)
from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry
from mlflow_gitops.settings import registry_identity
from tests.cli_runner import run_cli
from tests.integration.mlflow_helpers import client, log_regressor, register
from tests.servers import MlflowServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = """
version: 1
registries:
  dev:
    tracking_uri_env: COPIES_DEV_URI
  prod:
    tracking_uri_env: COPIES_PROD_URI
default_registry: prod
include: [prod.yaml]
"""
PROD = """
version: 1
registry: prod
models:
  {model}:
    versions:
      - copy_from: dev:{source}/{version}
        stage: Production
"""


def write_tree(folder: Path, model: str, source: str, version: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "registry.yaml").write_text(textwrap.dedent(ROOT).lstrip(), encoding="utf-8")
    text = PROD.format(model=model, source=source, version=version)
    (folder / "prod.yaml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


@pytest.fixture
def source(dev: MlflowServer) -> tuple[str, int, str]:
    """A real scikit-learn run in dev, registered as a version: (model, version, run id)."""
    name = f"taxi-{uuid.uuid4().hex[:6]}"
    run = log_regressor(dev.uri)
    return name, register(dev.uri, name, run.run_id), run.run_id


def in_tree(folder: Path, dev_uri: str, prod_uri: str, mp: pytest.MonkeyPatch) -> None:
    mp.chdir(folder)
    mp.setenv("COPIES_DEV_URI", dev_uri)
    mp.setenv("COPIES_PROD_URI", prod_uri)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)


def copy_runs(uri: str, source_run: str) -> list[Any]:
    """The live runs of prod's copies experiment that carry this source run's provenance."""
    found = client(uri).get_experiment_by_name(COPIES_EXPERIMENT)
    if found is None:
        return []
    runs = client(uri).search_runs([found.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get(COPY_RUN_TAG) == source_run]


def copies_of(uri: str, model: str, source_run: str) -> list[Any]:
    """The versions of `model` whose provenance names this source run."""
    versions = client(uri).search_model_versions(f"name = '{model}'")
    return [v for v in versions if v.tags.get(COPY_RUN_TAG) == source_run]


def test_a_copy_is_found_again_when_dev_is_reached_under_another_host_name(
    dev: MlflowServer,
    prod: MlflowServer,
    source: tuple[str, int, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, version, run_id = source
    served = f"{name}-prod"
    write_tree(tmp_path, served, name, version)
    assert dev.uri.startswith("http://127.0.0.1:")
    in_tree(tmp_path, dev.uri, prod.uri, monkeypatch)
    applied = run_cli(capsys, "apply", "registry.yaml", "--no-color")
    assert applied.code == 0, applied.out + applied.err
    [copy] = copies_of(prod.uri, served, run_id)
    assert copy.tags[COPY_REGISTRY_TAG] == registry_identity(dev.uri)

    # the same dev server, reached as localhost: the earlier copy is found by its source run
    localhost = dev.uri.replace("127.0.0.1", "localhost")
    assert registry_identity(localhost) != registry_identity(dev.uri)
    monkeypatch.setenv("COPIES_DEV_URI", localhost)
    planned = run_cli(capsys, "plan", "registry.yaml", "--no-color", "--detailed-exitcode")
    assert planned.code == 0, planned.out + planned.err
    assert "No changes. Every registry matches the files." in planned.out
    again = run_cli(capsys, "apply", "registry.yaml", "--no-color")
    assert again.code == 0, again.out + again.err
    # and the adapter, asked directly (apply's own check under the lock), copies nothing either
    dest, src = MlflowRegistry(prod.uri), MlflowRegistry(localhost)
    assert dest.copy_version(src, name, version, served).version == int(copy.version)
    assert [v.version for v in client(prod.uri).search_model_versions(f"name = '{served}'")] == [
        copy.version
    ]
    assert len(copy_runs(prod.uri, run_id)) == 1


def _fail_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    """The apply dies after the copy's run is written: the registration request never goes."""
    from mlflow.tracking._model_registry.client import ModelRegistryClient

    real = ModelRegistryClient.create_model_version

    def killed(self: Any, name: str, source: str, *args: Any, **kwargs: Any) -> Any:
        if COPY_REGISTRY_TAG in (kwargs.get("tags") or {}):
            raise ConnectionResetError("the apply was killed here (simulated)")
        return real(self, name, source, *args, **kwargs)

    monkeypatch.setattr(ModelRegistryClient, "create_model_version", killed)


def _fail_upload(monkeypatch: pytest.MonkeyPatch) -> None:
    """The apply dies while the copy's files are uploaded: the run is never ended."""
    from mlflow import MlflowClient

    real = MlflowClient.log_artifacts

    def killed(self: Any, run_id: str, local_dir: str, *args: Any, **kwargs: Any) -> Any:
        real(self, run_id, local_dir, *args, **kwargs)
        if "mlflow-gitops-copy-" in local_dir:
            raise ConnectionResetError("the apply was killed here (simulated)")

    monkeypatch.setattr(MlflowClient, "log_artifacts", killed)


@pytest.mark.parametrize("killed", ["registration", "upload"])
def test_an_interrupted_copy_is_finished_without_a_second_copy(
    killed: str,
    dev: MlflowServer,
    prod: MlflowServer,
    source: tuple[str, int, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, version, run_id = source
    served = f"{name}-prod"
    write_tree(tmp_path, served, name, version)
    in_tree(tmp_path, dev.uri, prod.uri, monkeypatch)
    with monkeypatch.context() as kill:
        (_fail_registration if killed == "registration" else _fail_upload)(kill)
        first = run_cli(capsys, "apply", "registry.yaml", "--no-color")
    assert first.code == 1, first.out + first.err
    assert "the apply was killed here (simulated)" in first.out
    [left] = copy_runs(prod.uri, run_id)  # the run an interrupted apply left behind
    assert copies_of(prod.uri, served, run_id) == []
    finished = killed == "registration"
    assert left.info.status == ("FINISHED" if finished else "RUNNING")
    assert left.data.tags[COPY_MODEL_PATH_TAG] == "model"

    planned = run_cli(capsys, "plan", "registry.yaml", "--no-color")
    assert planned.code == 0, planned.out + planned.err
    said = (
        f"registers from the run {left.info.run_id} that an interrupted apply left"
        if finished
        else f"deletes the unfinished run {left.info.run_id} that an interrupted apply left"
    )
    assert said in " ".join(planned.out.split()), planned.out

    applied = run_cli(capsys, "apply", "registry.yaml", "--no-color")
    assert applied.code == 0, applied.out + applied.err
    done = said.replace("registers from", "registered from").replace("deletes", "deleted")
    assert done in " ".join(applied.out.split()), applied.out

    # exactly one run and one version carry the provenance
    [run] = copy_runs(prod.uri, run_id)
    [copy] = copies_of(prod.uri, served, run_id)
    assert copy.run_id == run.info.run_id
    assert copy.current_stage == "Production"
    if finished:
        assert run.info.run_id == left.info.run_id  # reused, not copied again
    else:
        assert client(prod.uri).get_run(left.info.run_id).info.lifecycle_stage == "deleted"
        assert run.info.status == "FINISHED"
    # the version holds the model's files (registered from the run's model folder)
    files = {Path(f.path).name for f in client(prod.uri).list_artifacts(run.info.run_id, "model")}
    assert "MLmodel" in files
    again = run_cli(capsys, "plan", "registry.yaml", "--no-color", "--detailed-exitcode")
    assert again.code == 0, again.out


# --- nothing lost: a source whose files are on local disk ----------------------------------------


def tree_hashes(folder: Path) -> dict[str, str]:
    """Every file under `folder`: its path from there and the SHA-256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def local_dev(tmp_path: Path) -> tuple[str, Path, str, int]:
    """A SQLite registry whose artifacts are on local disk (file:), with a real scikit-learn
    run registered as version 1 and a second file in its run: (uri, artifacts, model, version)."""
    uri = f"sqlite:///{tmp_path}/dev.db"
    artifacts = tmp_path / "dev-artifacts"
    experiment = f"local-{uuid.uuid4().hex[:6]}"
    client(uri).create_experiment(experiment, artifact_location=artifacts.as_uri())
    run = log_regressor(uri, experiment=experiment)
    client(uri).log_text(run.run_id, "the run's own notes", "notes/readme.txt")
    name = "taxi-local"
    version = register(uri, name, run.run_id)
    location = client(uri).get_model_version_download_uri(name, str(version))
    assert location.startswith(artifacts.as_uri()), location  # on local disk
    return uri, artifacts, name, version


def _as_unity_catalog(store: Any, tracking_uri: str, handed: list[str | None]) -> Any:
    """The destination store's create_model_version behind MLflow's own Unity Catalog code
    for the model's files (mlflow/store/_unity_catalog/registry/rest_store.py `_local_model_dir`):
    it downloads the source when given no local folder, and deletes what the download returned."""
    from mlflow.store._unity_catalog.registry.rest_store import UcModelRegistryStore

    real = store.create_model_version
    uc = SimpleNamespace(tracking_uri=tracking_uri)

    def create_model_version(
        name: str,
        source: str,
        run_id: str | None = None,
        tags: Any = None,
        run_link: str | None = None,
        description: str | None = None,
        local_model_path: str | None = None,
        model_id: str | None = None,
    ) -> Any:
        handed.append(local_model_path)
        with UcModelRegistryStore._local_model_dir(uc, source, local_model_path) as folder:
            assert (Path(folder) / "MLmodel").is_file()
        return real(
            name, source, run_id, tags, run_link, description, local_model_path, model_id=model_id
        )

    return create_model_version


def test_mlflows_unity_catalog_store_deletes_a_local_folder_it_downloads(tmp_path: Path) -> None:
    """Why a copy hands MLflow a folder of its own: given a `file:` source and no local folder,
    MLflow 3.17's Unity Catalog store deletes the source folder itself (a local download
    returns it). If this stops failing, MLflow changed: check the comment in
    registry/mlflow/copy.py."""
    from mlflow.store._unity_catalog.registry.rest_store import UcModelRegistryStore

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    uc = SimpleNamespace(tracking_uri=f"sqlite:///{tmp_path}/x.db")
    with UcModelRegistryStore._local_model_dir(uc, folder.as_uri(), None) as got:
        assert Path(got) == folder
    assert not folder.exists()


@pytest.mark.parametrize("destination", ["another server", "the same registry"])
def test_a_copy_leaves_every_file_of_a_local_source_in_place(
    destination: str,
    local_dev: tuple[str, Path, str, int],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    uri, artifacts, name, version = local_dev
    before = tree_hashes(artifacts)
    assert any(p.endswith("MLmodel") for p in before)
    assert any(p.endswith("notes/readme.txt") for p in before)
    src = MlflowRegistry(uri)
    if destination == "the same registry":
        dest = src
    else:  # prod: `mlflow server` on PostgreSQL
        dest = MlflowRegistry(request.getfixturevalue("prod").uri)
    handed: list[str | None] = []
    dest.writer.store.create_model_version = _as_unity_catalog(dest.writer.store, dest.uri, handed)

    served = f"taxi-{uuid.uuid4().hex[:6]}"
    copied = dest.copy_version(src, name, version, served)

    assert tree_hashes(artifacts) == before  # every file still there, byte for byte
    # the store was handed a folder of the tool's own, outside the source, gone afterwards
    [local] = handed
    assert local is not None
    assert artifacts.resolve() not in Path(local).resolve().parents
    assert "mlflow-gitops-copy-" in local
    assert not Path(local).exists()
    got = client(dest.uri).get_model_version(served, str(copied.version))
    assert got.tags[COPY_REGISTRY_TAG] == registry_identity(uri)
    # the copy loads from the destination
    into = tmp_path / "loaded"
    shutil.rmtree(into, ignore_errors=True)
    from mlflow.artifacts import download_artifacts

    location = client(dest.uri).get_model_version_download_uri(served, str(copied.version))
    loaded = Path(
        download_artifacts(artifact_uri=location, dst_path=str(into), tracking_uri=dest.uri)
    )
    assert (loaded / "MLmodel").is_file()
