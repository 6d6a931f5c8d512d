"""Settings for every test: no call leaves the machine (MLflow's usage telemetry is off for the
tests and for every server and child process they start), and no test or test module leaves its
registry URI behind for the next one (mlflow.set_tracking_uri writes MLFLOW_TRACKING_URI into
os.environ). And the real servers shared by the integration and reliability tests, started on
first use and stopped at the end of the session."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.mlflow2 import mlflow2_bin, mlflow2_python
from tests.servers import MlflowServer
from tests.servers import postgres_server as postgres_mlflow_server

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

_URI_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_ID",  # mlflow.set_experiment sets it, and start_run reads it
    "MLFLOW_EXPERIMENT_NAME",
)
_URI_GLOBALS = (
    ("mlflow.tracking._tracking_service.utils", "_tracking_uri"),
    ("mlflow.tracking._model_registry.utils", "_registry_uri"),
    ("mlflow.tracking.fluent", "_active_experiment_id"),  # one server's id, meaningless on another
)


@contextmanager
def _uris_restored() -> Iterator[None]:
    """The process's MLflow URIs and active experiment (variables and MLflow's globals) as they
    were before the block."""
    variables = {key: os.environ.get(key) for key in _URI_VARIABLES}
    globals_ = {
        (module, name): getattr(sys.modules[module], name)
        for module, name in _URI_GLOBALS
        if module in sys.modules
    }
    yield
    for key, value in variables.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    for module, name in _URI_GLOBALS:
        if module in sys.modules:
            setattr(sys.modules[module], name, globals_.get((module, name)))


# the registry URI as the session found it: the tool reads MLFLOW_REGISTRY_URI (as MLflow does),
# and MLflow's set_registry_uri writes it, so one left by a fixture's training or registration
# (module or session scope) would send the next tests' models to that fixture's server
_SESSION_REGISTRY_URI = os.environ.get("MLFLOW_REGISTRY_URI")


def _registry_uri_as_the_session_began() -> None:
    if _SESSION_REGISTRY_URI is None:
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
    else:
        os.environ["MLFLOW_REGISTRY_URI"] = _SESSION_REGISTRY_URI
    registry_utils = sys.modules.get("mlflow.tracking._model_registry.utils")
    if registry_utils is not None:
        registry_utils._registry_uri = None  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _registry_uris_restored() -> Iterator[None]:
    """Each test starts with the registry URI the session began with, and leaves the MLflow
    URIs as it found them."""
    _registry_uri_as_the_session_began()
    with _uris_restored():
        yield


@pytest.fixture(scope="module", autouse=True)
def _module_registry_uris_restored() -> Iterator[None]:
    """So does each module, for what its module-scoped fixtures set (MlflowRegistry sets both);
    its fixtures start with the registry URI the session began with."""
    _registry_uri_as_the_session_began()
    with _uris_restored():
        yield


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    work = tmp_path_factory.mktemp("server-sqlite")
    server = MlflowServer(f"sqlite:///{work}/mlflow.db", work)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """`mlflow server` from MLflow 2.22.x (the last 2.x release) on a SQLite backend."""
    work = tmp_path_factory.mktemp("server-mlflow2")
    from tests.integration.mlflow_helpers import MLFLOW2_PYTHONS

    server = MlflowServer(f"sqlite:///{work}/mlflow.db", work, mlflow_bin=mlflow2_bin())
    MLFLOW2_PYTHONS[server.uri] = mlflow2_python()  # log_regressor logs its runs with MLflow 2
    yield server
    server.stop()
    MLFLOW2_PYTHONS.pop(server.uri, None)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with postgres_mlflow_server(tmp_path_factory.mktemp("server-postgres")) as server:
        yield server


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """The registry models are trained into: `mlflow server` on SQLite, one per test module."""
    work = tmp_path_factory.mktemp("dev")
    with MlflowServer(f"sqlite:///{work}/mlflow.db", work) as server:
        yield server


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """The registry serving reads: `mlflow server` on PostgreSQL, one per test module."""
    with postgres_mlflow_server(tmp_path_factory.mktemp("prod")) as server:
        yield server
