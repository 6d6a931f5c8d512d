"""Real registries: a sqlite URI, `mlflow server` on loopback (sqlite backend), `mlflow server`
backed by the PostgreSQL server on 127.0.0.1:5432, and an MLflow 2.22 server (its own venv, see
tests/mlflow2.py). When CI is set, a missing PostgreSQL fails."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.integration.mlflow_helpers import MLFLOW2_PYTHONS
from tests.mlflow2 import mlflow2_bin, mlflow2_python
from tests.postgres import postgres_server as postgres_mlflow_server
from tests.servers import MlflowServer

BACKENDS = ["sqlite", "server", "postgres", "server2"]
SERVERS = {"server": "sqlite_server", "postgres": "postgres_server", "server2": "mlflow2_server"}


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
    server = MlflowServer(f"sqlite:///{work}/mlflow.db", work, mlflow_bin=mlflow2_bin())
    MLFLOW2_PYTHONS[server.uri] = mlflow2_python()  # log_regressor logs its runs with MLflow 2
    yield server
    server.stop()
    MLFLOW2_PYTHONS.pop(server.uri, None)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with postgres_mlflow_server(tmp_path_factory.mktemp("server-postgres")) as server:
        yield server


@pytest.fixture(scope="session")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("sqlite")
    return f"sqlite:///{folder}/mlflow.db"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The tracking URI of each real registry in turn: server2 is an MLflow 2.22 server."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_uri"))
    return str(request.getfixturevalue(SERVERS[request.param]).uri)


@pytest.fixture
def model_name(request: pytest.FixtureRequest) -> str:
    """A model name unique to the test, so tests share servers without seeing each other."""
    return f"m-{request.node.name[:40]}-{uuid.uuid4().hex[:6]}".replace("[", "-").replace("]", "")
