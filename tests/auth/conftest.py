"""The basic-auth servers (see harness.py): MLflow 3 with default_permission READ and with
NO_PERMISSIONS, MLflow 2.22 with READ; started on first use, stopped at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.auth.harness import GENERATIONS, AuthServer, start_auth_server


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """basic-auth with default_permission = READ."""
    auth = start_auth_server(tmp_path_factory.mktemp("auth-read"), "READ")
    yield auth
    auth.server.stop()


@pytest.fixture(scope="session")
def closed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """basic-auth with default_permission = NO_PERMISSIONS: users see only what they are granted."""
    auth = start_auth_server(tmp_path_factory.mktemp("auth-closed"), "NO_PERMISSIONS")
    yield auth
    auth.server.stop()


@pytest.fixture(scope="session")
def auth_server2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """MLflow 2.22's basic-auth with default_permission = READ."""
    auth = start_auth_server(tmp_path_factory.mktemp("auth2-read"), "READ", "2.22")
    yield auth
    auth.server.stop()


@pytest.fixture(params=GENERATIONS, ids=[f"mlflow{g}" for g in GENERATIONS])
def any_auth_server(request: pytest.FixtureRequest) -> AuthServer:
    """The basic-auth server (default_permission = READ) of each MLflow generation in turn."""
    name = "auth_server" if request.param == "3" else "auth_server2"
    server: AuthServer = request.getfixturevalue(name)
    return server


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in (
        "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
    ):  # fmt: skip
        monkeypatch.delenv(key, raising=False)
