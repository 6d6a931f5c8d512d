"""A registry whose models live apart from its tracking server (registry_uri:, as Unity Catalog
beside a Databricks workspace): two real `mlflow server`s, one holding the runs, the other the
models. plan and apply read and write the models on the registry server, read the gates' run
metrics on the tracking server, and keep the apply lock and the audit record (in the configured
audit experiment) on the tracking server; a saved plan records the registry server."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlflow_gitops.record import LOCK_MODEL
from tests.cli_runner import run_cli
from tests.integration.mlflow_helpers import client, log_regressor
from tests.servers import MlflowServer

pytestmark = [pytest.mark.integration]

MODEL = "taxi-duration"
AUDIT = "team-rides-audit"


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MlflowServer, MlflowServer]]:
    """The tracking server (runs) and the registry server (models)."""
    runs_dir = tmp_path_factory.mktemp("runs-server")
    models_dir = tmp_path_factory.mktemp("models-server")
    runs = MlflowServer(f"sqlite:///{runs_dir}/mlflow.db", runs_dir, workers=1)
    try:
        models = MlflowServer(f"sqlite:///{models_dir}/mlflow.db", models_dir, workers=1)
    except BaseException:
        runs.stop()
        raise
    yield runs, models
    models.stop()
    runs.stop()


def write_spec(folder: Path, runs: str, models: str, description: str) -> Path:
    spec = folder / "registry.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            tracking_uri: {runs}
            registry_uri: {models}
            audit_experiment: {AUDIT}
            models:
              {MODEL}:
                description: {description}
                tags: {{team: rides}}
                aliases: {{champion: 1}}
                versions:
                  - version: 1
                    tags: {{model_type: linear}}
                gates:
                  alias:champion:
                    - metric: rmse
                      max: 1000
            """
        ),
        encoding="utf-8",
    )
    return spec


def register_apart(runs: str, models: str, run_id: str) -> None:
    """What a training pipeline does with a registry apart from its tracking server: the run's
    model registered on the registry server by its runs:/ URI. (MLflow 3's register_model sends
    models:/<logged model id>, and an artifact location with the run id, both of which an
    `mlflow server` looks up among its own runs and logged models: the registry server has
    none.)"""
    from mlflow import MlflowClient

    both = MlflowClient(tracking_uri=runs, registry_uri=models)
    both.create_registered_model(MODEL)
    both.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id)


def test_models_on_the_registry_server_runs_lock_and_audit_on_the_tracking_server(
    servers: tuple[MlflowServer, MlflowServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs, models = servers
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(key, raising=False)
    logged = log_regressor(runs.uri)
    register_apart(runs.uri, models.uri, logged.run_id)
    spec = write_spec(tmp_path, runs.uri, models.uri, "Predicts trip duration.")

    planned = run_cli(capsys, "plan", str(spec), "--detailed-exitcode")
    assert planned.code == 2, planned.err
    assert f"reading 1 models from {models.uri}" in planned.err or models.uri in planned.out
    # the gate read the run's rmse on the tracking server: the registry server has no such run
    assert "rmse" in planned.out
    assert "blocked" not in planned.out.lower()

    applied = run_cli(capsys, "apply", str(spec), "--actor", "alice", "--commit", "1a2b3c4d")
    assert applied.code == 0, applied.out + applied.err
    assert AUDIT in applied.out

    on_models, on_runs = client(models.uri), client(runs.uri)
    model = on_models.get_registered_model(MODEL)
    assert model.description.startswith("Predicts trip duration.")
    assert model.tags["team"] == "rides"
    [version] = on_models.search_model_versions(f"name = '{MODEL}'")
    assert (version.run_id, int(version.version)) == (logged.run_id, 1)
    assert version.tags["model_type"] == "linear"
    assert model.aliases == {"champion": "1"}
    # nothing of the models on the tracking server, nor of the record on the registry server
    assert [m.name for m in on_runs.search_registered_models()] == []
    assert on_models.get_experiment_by_name(AUDIT) is None
    experiment = on_runs.get_experiment_by_name(AUDIT)
    assert experiment is not None
    [record] = on_runs.search_runs([experiment.experiment_id])
    assert record.info.status == "FINISHED"
    assert record.data.tags["mlflow_gitops.commit"] == "1a2b3c4d"
    assert LOCK_MODEL not in {m.name for m in on_models.search_registered_models()}

    again = run_cli(capsys, "plan", str(spec), "--detailed-exitcode")
    assert again.code == 0, again.out + again.err

    # a saved plan names the registry server, and applies there
    write_spec(tmp_path, runs.uri, models.uri, "Trip duration, in minutes.")
    out = tmp_path / "plan.json"
    assert run_cli(capsys, "plan", str(spec), "--out", str(out)).code == 0
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["registry"] == models.uri
    assert (saved["tracking_uri"], saved["registry_uri"]) == (runs.uri, models.uri)
    done = run_cli(capsys, "apply", str(out), "--actor", "alice", "--commit", "5e6f7a8b")
    assert done.code == 0, done.out + done.err
    assert on_models.get_registered_model(MODEL).description.startswith("Trip duration")
    assert len(on_runs.search_runs([experiment.experiment_id])) == 2
    # history reads the models on the registry server and the record on the tracking server
    history = run_cli(capsys, "history", MODEL, "--file", str(spec))
    assert history.code == 0, history.err
    assert "v1    alias champion set  (commit 1a2b3c4, by alice)" in history.out
