"""The adapter and the process it runs in: several registries in one process leave MLflow's
globals (tracking URI, its variable) alone, registries configured by MLflow's own variables never
wait on the credentials lock, errors name the user this registry acts as and its own variables,
and whatever goes wrong during a copy is a RegistryError. On local SQLite registries."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mlflow_gitops.credentials import Credentials
from mlflow_gitops.errors import PermissionDenied, RegistryError
from mlflow_gitops.registry.mlflow import copy
from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry
from mlflow_gitops.registry.mlflow.env import credentials_env
from tests.fakes import FakeRegistry


def _globals() -> tuple[object, ...]:
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return (
        tracking_utils._tracking_uri,
        registry_utils._registry_uri,
        os.environ.get("MLFLOW_TRACKING_URI"),
        os.environ.get("MLFLOW_REGISTRY_URI"),
    )


def _model_folder(tmp_path: Path) -> str:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    return str(folder)


def test_no_credentials_of_its_own_never_waits_on_the_lock() -> None:
    """Another thread holds the lock (a named registry's file transfer): a registry configured by
    MLflow's variables changes nothing in the environment and goes on meanwhile."""
    held, entered = threading.Event(), threading.Event()
    seen: list[bool] = []

    def holder() -> None:
        with credentials_env(Credentials("other", "pw")):
            held.set()
            seen.append(entered.wait(timeout=60))  # only a failing test waits this long

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait()
    with credentials_env(None):
        entered.set()
    thread.join()
    assert seen == [True]


def test_two_adapters_leave_mlflows_globals_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    mine = f"sqlite:///{tmp_path}/mine.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mine)
    mlflow.set_tracking_uri(mine)
    before = _globals()
    dev = MlflowRegistry(f"sqlite:///{tmp_path}/dev.db")
    prod = MlflowRegistry(f"sqlite:///{tmp_path}/prod.db", Credentials())
    assert _globals() == before

    # register() uses MLflow's fluent API: the globals are this registry's during the call only
    source = _model_folder(tmp_path)
    prod.create_model("m")
    assert prod.register_version("m", source, None) == 1
    assert _globals() == before
    assert mlflow.get_tracking_uri() == mine
    assert [v.version for v in prod.read(["m"]).models["m"].versions] == [1]
    assert dev.read(["m"]).models == {}  # nothing went to the other registry


def test_a_named_registrys_errors_name_its_user_and_its_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "process-user")
    own = Credentials("prod-bot", "pw", source=("PROD_USER", "PROD_PASSWORD"))
    registry = MlflowRegistry(f"sqlite:///{tmp_path}/prod.db", own)
    assert registry.user == "user 'prod-bot'"

    with pytest.raises(PermissionDenied) as refused, registry._errors("set tag at", model="m"):
        raise RuntimeError("API request failed with error code 403 != 200")
    assert "which user 'prod-bot' lacks" in refused.value.message
    assert "process-user" not in refused.value.message

    with pytest.raises(RegistryError) as unknown, registry._errors("read the registry at"):
        raise RuntimeError("API request failed with error code 401 != 200")
    assert "401 Unauthenticated" in unknown.value.message
    assert unknown.value.hint == "check this registry's credentials: PROD_USER, PROD_PASSWORD"

    # a registry configured by MLflow's variables names them, as before
    plain = MlflowRegistry(f"sqlite:///{tmp_path}/dev.db")
    assert plain.user == "user 'process-user'"
    with pytest.raises(RegistryError) as env, plain._errors("read the registry at"):
        raise RuntimeError("API request failed with error code 401 != 200")
    assert env.value.hint.startswith("check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
    assert FakeRegistry().user == "user 'process-user'"


def test_a_copy_from_a_registry_that_is_not_mlflow_is_a_registry_error(tmp_path: Path) -> None:
    dest = MlflowRegistry(f"sqlite:///{tmp_path}/prod.db")
    with pytest.raises(RegistryError, match="its source registry is not an MLflow registry"):
        dest.copy_version(FakeRegistry(), "m", 1, "m")


def test_a_failure_outside_mlflow_during_a_copy_is_a_registry_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while the files are copied: apply's error funnel gets a RegistryError."""
    source = MlflowRegistry(f"sqlite:///{tmp_path}/dev.db")
    dest = MlflowRegistry(f"sqlite:///{tmp_path}/prod.db")
    source.create_model("m")
    source.writer.create_model_version("m", _model_folder(tmp_path))

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(copy.tempfile, "TemporaryDirectory", full)
    with pytest.raises(RegistryError) as failed:
        dest.copy_version(source, "m", 1, "m-prod")
    assert failed.value.message.startswith(f"cannot copy m/1 into m-prod at {dest.uri}: ")
    assert "No space left on device" in failed.value.message
    assert dest.read(["m-prod"]).models == {}
