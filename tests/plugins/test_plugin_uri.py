"""A registry MLflow reaches through a plugin (SageMaker's arn:, Azure ML's azureml://, ...) is
reached through it untouched: a test-only plugin registers a tracking store, a registry store and
a request auth provider for `gitopstest://`, in front of a real `mlflow server` behind a proxy
that refuses unsigned requests. plan, apply, import and a saved plan go through that URI; what
the user reads names the URI as given; the proxy saw only signed requests."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlflow_gitops.settings import registry_identity
from tests.cli_runner import run_cli, run_process
from tests.plugins.harness import SITE, SigningProxy, load_plugin, signing_proxy
from tests.servers import MlflowServer

pytestmark = pytest.mark.integration

MODEL = "plug-model"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    work = tmp_path_factory.mktemp("plugin-server")
    # runs' files on local disk, as a managed service's are in its own object store: MLflow's
    # proxied mlflow-artifacts: locations are reached only through an http(s) tracking URI
    files = ("--no-serve-artifacts", "--default-artifact-root", str(work / "runs"))
    backend = f"sqlite:///{work}/mlflow.db"
    with MlflowServer(backend, work, workers=1, extra_args=files) as running:
        client = MlflowClient(running.uri, registry_uri=running.uri)
        client.create_registered_model(MODEL)
        for _ in range(2):
            client.create_model_version(MODEL, "s3://bucket/plug-model")
        yield running


@pytest.fixture
def proxy(server: MlflowServer) -> Iterator[SigningProxy]:
    with signing_proxy(f"127.0.0.1:{server.port}") as running:
        yield running


def subprocess_env() -> dict[str, str]:
    import mlflow_gitops

    src = Path(mlflow_gitops.__file__).resolve().parent.parent
    return {"PYTHONPATH": os.pathsep.join((str(src), str(SITE)))}


def test_plugin_uris_are_their_own_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for uri in (
        "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/prod",
        "azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/s/resourceGroups/g",
        "databricks://prod",
        "gitopstest://127.0.0.1:5000",
    ):
        assert registry_identity(uri) == uri
    assert registry_identity("gitopstest://alice:pw@127.0.0.1:5000?token=t") == (
        "gitopstest://127.0.0.1:5000"
    )
    assert registry_identity("mlruns") == f"file://{tmp_path}/mlruns"
    assert registry_identity("file:mlruns") == f"file://{tmp_path}/mlruns"


def test_plan_apply_import_and_a_saved_plan_through_a_plugin(
    proxy: SigningProxy,
    server: MlflowServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    load_plugin()
    uri = f"gitopstest://127.0.0.1:{proxy.port}"
    spec = tmp_path / "registry.yaml"
    spec.write_text(
        f"version: 1\ntracking_uri: {uri}\n"
        f"models:\n  {MODEL}:\n    aliases: {{champion: 2}}\n    versions:\n"
        "      - version: 1\n        tags: {reviewed: 'yes'}\n"
        "      - version: 2\n"
    )

    # in this process: MLflow finds the plugin by its entry points
    planned = run_cli(capsys, "plan", str(spec))
    assert planned.code == 0, planned.out + planned.err
    assert "Plan: 2 to change" in planned.out
    assert uri in planned.out
    assert "file://" not in planned.out
    assert "champion" in planned.out

    # in a subprocess: a saved plan records the URI as its identity, and apply uses it
    env = subprocess_env()
    saved = tmp_path / "plan.json"
    out = run_process("plan", str(spec), "--out", str(saved), env=env)
    assert out.code == 0, out.out + out.err
    doc = json.loads(saved.read_text())
    assert doc["registry"] == uri
    applied = run_process("apply", str(saved), env=env)
    assert applied.code == 0, applied.out + applied.err
    assert uri in applied.out

    upstream = MlflowClient(server.uri, registry_uri=server.uri)
    assert upstream.get_registered_model(MODEL).aliases == {"champion": "2"}
    assert upstream.get_model_version(MODEL, "1").tags["reviewed"] == "yes"

    again = run_cli(capsys, "plan", str(spec))
    assert again.code == 0, again.out + again.err
    assert "No changes" in again.out

    imported = tmp_path / "imported.yaml"
    done = run_process("import", "--tracking-uri", uri, "--out", str(imported), env=env)
    assert done.code == 0, done.out + done.err
    text = imported.read_text()
    assert "champion: 2" in text
    assert "reviewed" in text

    assert proxy.seen  # every request went through the proxy
    assert proxy.refused == []  # and the plugin signed each one


def test_the_proxy_refuses_an_unsigned_request(proxy: SigningProxy, tmp_path: Path) -> None:
    """The proxy is not a pass-through: the same server through plain http:// is refused."""
    spec = tmp_path / "registry.yaml"
    spec.write_text(f"version: 1\nmodels:\n  {MODEL}: {{}}\n")
    out = run_process(
        "plan", str(spec), "--tracking-uri", f"http://127.0.0.1:{proxy.port}", env=subprocess_env()
    )
    assert out.code != 0
    assert "401" in out.out + out.err or "unauthorized" in (out.out + out.err).lower()
    assert proxy.refused
