"""MLflow 2.x servers: the test harness itself, and what differs from MLflow 3."""

from __future__ import annotations

import urllib.request

import pytest

from tests.integration.mlflow_helpers import client, log_regressor, register
from tests.servers import MlflowServer

pytestmark = [pytest.mark.integration]


def test_mlflow2_server_is_2_22_and_takes_runs_and_registrations(
    mlflow2_server: MlflowServer, model_name: str
) -> None:
    with urllib.request.urlopen(f"{mlflow2_server.uri}/version", timeout=10) as answer:
        assert answer.read().decode().startswith("2.22.")
    run = log_regressor(mlflow2_server.uri, "tree", seed=3)
    # registered by the MLflow 3 client, as the tool registers `run:` entries
    assert register(mlflow2_server.uri, model_name, run.run_id) == 1
    version = client(mlflow2_server.uri).get_model_version(model_name, "1")
    assert version.run_id == run.run_id
    assert version.source.endswith(f"{run.run_id}/artifacts/model")
