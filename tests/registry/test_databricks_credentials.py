"""A Databricks registry's REST stores send its own host and token, or its profile's, and never
another registry's nor the process's DATABRICKS_HOST/DATABRICKS_TOKEN: MLflow's own store classes
(the workspace's tracking store, Unity Catalog's registry store), built as MLflow builds them,
asked for the credentials each request would carry. No request leaves the machine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlflow_gitops.credentials import Credentials
from mlflow_gitops.registry.mlflow.env import credentials_env, own_client
from mlflow_gitops.settings import Endpoint


def stores(where: Endpoint) -> tuple[Any, Any]:
    client = own_client(where)
    return client._tracking_client.store, client._get_registry_client().store


class _NotFound(BaseHTTPRequestHandler):
    """A workspace that has no host metadata (the Databricks SDK asks for it, then goes on)."""

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error_code": "NOT_FOUND"}')

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def workspaces() -> Iterator[dict[str, str]]:
    """Three loopback hosts: the dev and prod profiles' and the process's own."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _NotFound) for _ in range(3)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hosts = [f"http://127.0.0.1:{s.server_port}" for s in servers]
        yield dict(zip(("dev", "prod", "global"), hosts, strict=True))
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def process_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, workspaces: dict[str, str]
) -> dict[str, str]:
    """The process's own Databricks variables, and a profile file with two workspaces."""
    config = tmp_path / "databrickscfg"
    config.write_text(
        f"[prod]\nhost = {workspaces['prod']}\ntoken = dapi-prod-profile\n\n"
        f"[dev]\nhost = {workspaces['dev']}\ntoken = dapi-dev-profile\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    monkeypatch.setenv("DATABRICKS_HOST", workspaces["global"])
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-global")
    return workspaces


def test_two_workspaces_each_send_their_own_host_and_token(process_env: dict[str, str]) -> None:
    from mlflow.store._unity_catalog.registry.rest_store import UcModelRegistryStore

    prod = Endpoint(
        "databricks://prod",
        credentials=Credentials(token="dapi-prod", host="https://prod.example"),
    )
    staging = Endpoint(
        "databricks", credentials=Credentials(token="dapi-staging", host="https://staging.example")
    )
    for where, host, token in (
        (prod, "https://prod.example", "dapi-prod"),
        (staging, "https://staging.example", "dapi-staging"),
    ):
        tracking, registry = stores(where)
        assert isinstance(registry, UcModelRegistryStore)  # databricks -> databricks-uc
        for creds in (
            tracking.get_host_creds(),
            registry.get_host_creds(),
            registry.get_tracking_host_creds(),  # where UC reads a version's source run
        ):
            assert (creds.host, creds.token) == (host, token)


def test_a_profile_registry_reads_its_profile_and_not_the_process_variables(
    process_env: dict[str, str],
) -> None:
    # a named registry without host_env reads the profile its URI names, as MLflow does, with
    # no DATABRICKS_HOST/DATABRICKS_TOKEN of the process (nor of another registry) in the way
    where = Endpoint("databricks://dev", "databricks-uc://dev", Credentials())
    tracking, registry = stores(where)
    for creds in (tracking.get_host_creds(), registry.get_host_creds()):
        assert creds.host == process_env["dev"]
        assert creds.token in (None, "dapi-dev-profile")  # the SDK may send it itself
        assert creds.token != "dapi-global"
    import os

    assert os.environ["DATABRICKS_HOST"] == process_env["global"]  # restored


def test_file_transfers_see_exactly_their_registrys_variables(
    process_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "mlflow-global")
    workspace = Credentials(token="dapi-prod", host="https://prod.example")
    with credentials_env(workspace):
        assert os.environ["DATABRICKS_HOST"] == "https://prod.example"
        assert os.environ["DATABRICKS_TOKEN"] == "dapi-prod"
        assert "MLFLOW_TRACKING_TOKEN" not in os.environ
    with credentials_env(Credentials(username="alice", password="pw-alice")):
        assert "DATABRICKS_HOST" not in os.environ
        assert "DATABRICKS_TOKEN" not in os.environ
        assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert os.environ["DATABRICKS_TOKEN"] == "dapi-global"
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "mlflow-global"


def test_the_default_registry_keeps_mlflows_own_stores(process_env: dict[str, str]) -> None:
    # a file without registries: MLflow's stores, reading the process's variables
    tracking, registry = stores(Endpoint("databricks"))
    assert registry.get_host_creds().host == process_env["global"]
    assert tracking.get_host_creds().host == process_env["global"]
