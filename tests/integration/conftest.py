"""Real registries: a sqlite URI, `mlflow server` on loopback (sqlite backend), `mlflow server`
backed by the PostgreSQL server on 127.0.0.1:5432, and an MLflow 2.22 server (its own venv, see
tests/mlflow2.py); the servers' fixtures are in tests/conftest.py. When CI is set, a missing
PostgreSQL fails."""

from __future__ import annotations

import uuid

import pytest

BACKENDS = ["sqlite", "server", "postgres", "server2"]
SERVERS = {"server": "sqlite_server", "postgres": "postgres_server", "server2": "mlflow2_server"}


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
