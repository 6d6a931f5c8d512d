"""A registry the tool manages and people also change by hand, the way the course notebook does:
its own calls interleaved with plan, apply and history, on an MLflow 3 and an MLflow 2.22 server.
The history survives a hand-written description; the hand edits show as drift and are undone."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from mlflow_gitops.record import AUDIT_EXPERIMENT, HISTORY_MARKER, read_record, split_history
from tests.cli_runner import run_cli
from tests.helpers import write_spec
from tests.integration.mlflow_helpers import client, log_regressor, register

pytestmark = [pytest.mark.integration]

SPEC = """\
version: 1
models:
  {name}:
    versions:
      - version: 1
        stage: Production
        description: Linear regression, the baseline.
      - version: 2
        stage: Staging
"""


@pytest.fixture(params=["server", "server2"])
def server_uri(request: pytest.FixtureRequest) -> str:
    """An MLflow 3 server and an MLflow 2.22 server, both with a SQLite backend."""
    fixture = "sqlite_server" if request.param == "server" else "mlflow2_server"
    return str(request.getfixturevalue(fixture).uri)


@pytest.fixture(autouse=True)
def _no_ambient_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_the_notebook_and_the_tool_share_a_registry_and_no_history_is_lost(
    server_uri: str, model_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    uri = ["--tracking-uri", server_uri]
    linear = log_regressor(server_uri, "linear", seed=0)
    tree = log_regressor(server_uri, "tree", seed=1)
    # the notebook registers its runs
    assert register(server_uri, model_name, linear.run_id) == 1
    assert register(server_uri, model_name, tree.run_id) == 2
    spec = write_spec(tmp_path, SPEC.format(name=model_name))

    first = run_cli(capsys, "apply", str(spec), *uri, "--actor", "alice", "--commit", "a1b2c3d4e5")
    assert first.code == 0, first
    assert "Recorded as run" in first.out
    nb = client(server_uri)
    v1_block = split_history(nb.get_model_version(model_name, "1").description)[1]
    assert "None -> Production (commit a1b2c3d, by alice)" in v1_block

    # the notebook promotes by hand and writes its own descriptions over the tool's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stages are deprecated
        nb.transition_model_version_stage(
            model_name, "2", "Production", archive_existing_versions=True
        )
        nb.update_model_version(model_name, "2", description="transitioned to Production")
        nb.update_model_version(model_name, "1", description="archived, replaced by v2")
        latest = nb.get_latest_versions(model_name, stages=["Production"])
    assert [v.version for v in latest] == ["2"]
    folder = nb.download_artifacts(tree.run_id, "model", str(tmp_path / "download"))
    assert (Path(folder) / "MLmodel").is_file()
    mlflow.set_tracking_uri(server_uri)
    mlflow.set_registry_uri(server_uri)
    assert mlflow.pyfunc.load_model(f"models:/{model_name}/Production").metadata.run_id == (
        tree.run_id
    )
    for v in ("1", "2"):
        assert HISTORY_MARKER not in nb.get_model_version(model_name, v).description

    planned = run_cli(capsys, "plan", str(spec), *uri, "--detailed-exitcode")
    assert planned.code == 2, planned
    lines = planned.out.splitlines()
    drift = "[drift: changed in the registry by hand]"

    def shown(text: str) -> str:
        found = [line for line in lines if text in line]
        assert found, planned.out
        return found[0]

    assert drift in shown("~ v1 stage: Archived -> Production")
    assert drift in shown("~ v2 stage: Production -> Staging")
    assert drift in shown('~ v1 description: "archived, replaced by v2" -> "Linear regression')
    assert drift in shown("~ v1 history block: removed -> restored from the audit record (2 lines)")
    assert drift in shown("~ v2 history block: removed -> restored from the audit record (1 line)")

    # bob applies outside git, without --commit: the record names him and no commit
    second = run_cli(capsys, "apply", str(spec), *uri, "--actor", "bob")
    assert second.code == 0, second
    again = run_cli(capsys, "plan", str(spec), *uri, "--detailed-exitcode")
    assert again.code == 0, again

    v1, v2 = (nb.get_model_version(model_name, v) for v in ("1", "2"))
    assert (v1.current_stage, v2.current_stage) == ("Production", "Staging")
    user, block = split_history(v1.description)
    assert user == "Linear regression, the baseline."
    assert block.startswith(v1_block)  # every line the tool wrote before is back
    assert "history block restored from the audit record (by bob)" in block
    assert "None -> Staging (commit a1b2c3d, by alice)" in v2.description
    record = read_record(v2.tags)
    assert (record["actor"], record["commit"], record["pr"]) == ("bob", None, None)
    assert not any(k in v2.tags for k in ("mlflow_gitops.commit", "mlflow_gitops.actor"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [v.version for v in nb.get_latest_versions(model_name, ["Production"])] == ["1"]
    assert mlflow.pyfunc.load_model(f"models:/{model_name}/Production").metadata.run_id == (
        linear.run_id
    )

    # history: nothing lost, read from the audit record, newest first
    shown_history = run_cli(capsys, "history", model_name, *uri, "--format", "json")
    assert shown_history.code == 0, shown_history
    events = json.loads(shown_history.out)["events"]
    assert {e["source"] for e in events} == {"record"}
    changes = [(e["version"], e["change"], e["actor"]) for e in events]
    assert changes[-3:] == [  # alice's apply: the description, then the stages
        (2, "None -> Staging", "alice"),
        (1, "None -> Production", "alice"),
        (1, "description updated", "alice"),
    ]
    assert (1, "history block restored from the audit record", "bob") in changes
    assert (1, "Archived -> Production", "bob") in changes
    assert (2, "Production -> Staging", "bob") in changes
    times = [e["time"] for e in events]
    assert times == sorted(times, reverse=True)

    # the record itself, where the MLflow UI and search_runs show it
    experiment = nb.get_experiment_by_name(AUDIT_EXPERIMENT)
    runs = nb.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`mlflow_gitops.actor` = 'bob'",
    )
    mine = [r for r in runs if any(model_name in v for v in r.data.tags.values())]
    assert len(mine) == 1
    assert mine[0].info.status == "FINISHED"
    assert {a.path for a in nb.list_artifacts(mine[0].info.run_id)} == {
        "changes.json",
        "gates.json",
    }


def test_an_apply_that_cannot_write_its_record_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path}/mlflow.db"
    run = log_regressor(db)
    register(db, "m", run.run_id)
    nb = client(db)
    nb.delete_experiment(nb.create_experiment(AUDIT_EXPERIMENT))  # no record can be written there
    spec = write_spec(
        tmp_path, "version: 1\nmodels:\n  m:\n    versions:\n      - {version: 1, stage: Staging}\n"
    )
    applied = run_cli(capsys, "apply", str(spec), "--tracking-uri", db, "--actor", "alice")
    assert applied.code == 1, applied
    assert "cannot write the audit record, so nothing was applied" in applied.out
    assert "the audit experiment mlflow-gitops-audit is deleted" in applied.out
    version = nb.get_model_version("m", "1")
    assert version.current_stage == "None"
    assert not any(k.startswith("mlflow_gitops.") for k in version.tags)
    assert [m.name for m in nb.search_registered_models()] == ["m"]  # the apply lock is gone too
