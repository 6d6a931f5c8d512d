"""webhooks: against an MLflow 2.22 server, which has no webhook API: plan stops at a located
error that names the MLflow version needed, and a file without webhooks plans as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_runner import run_cli
from tests.servers import MlflowServer

pytestmark = [pytest.mark.integration]

FILE = """\
version: 1
tracking_uri: {uri}
webhooks:
  drift-relay:
    url: https://relay.example.com/webhook
    events: [model_version_alias.created]
    secret_env: RELAY_SECRET
models:
  {model}:
    description: declared
"""


def test_webhooks_on_an_mlflow2_server_are_a_located_error_naming_the_version(
    mlflow2_server: MlflowServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = tmp_path / "registry.yaml"
    path.write_text(FILE.format(uri=mlflow2_server.uri, model="webhooks-on-2x"), encoding="utf-8")

    result = run_cli(capsys, "plan", str(path))

    assert result.code == 1, result.out
    assert f"{path}:3:1: webhooks: the registry at {mlflow2_server.uri} has no webhook API" in (
        result.err
    )
    assert "webhooks need an MLflow 3.3+ server" in result.err
    assert "upgrade the server to MLflow 3.3 or later, or remove webhooks:" in result.err

    without = FILE.format(uri=mlflow2_server.uri, model="webhooks-on-2x").split("webhooks:")[0]
    path.write_text(without + "models:\n  webhooks-on-2x: {}\n", encoding="utf-8")
    assert run_cli(capsys, "plan", str(path)).code == 0
