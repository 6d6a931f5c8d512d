"""plan and apply against real MLflow registries, with real scikit-learn models."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_gitops.record import read_record
from tests.cli_runner import run_cli
from tests.helpers import write_spec
from tests.integration.mlflow_helpers import client, log_regressor, register

pytestmark = [pytest.mark.integration]


@pytest.fixture(autouse=True)
def _no_ambient_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_plan_apply_then_plan_is_empty(
    backend: str, model_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = log_regressor(backend, "linear")
    second = log_regressor(backend, "tree", seed=1)
    assert register(backend, model_name, first.run_id) == 1
    spec = write_spec(
        tmp_path,
        f"""
        version: 1
        models:
          {model_name}:
            description: Trip duration in minutes.
            tags: {{team: rides}}
            aliases: {{champion: 1, challenger: "run:{second.run_id}"}}
            versions:
              - version: 1
                stage: Production
                tags: {{model_type: linear}}
              - run: {second.run_id}/model
                stage: Staging
                description: Decision tree.
        """,
    )
    uri = ["--tracking-uri", backend]
    planned = run_cli(capsys, "plan", str(spec), *uri, "--detailed-exitcode")
    assert planned.code == 2, planned
    assert "+ new version" in planned.out
    assert "~ v1 stage: None -> Production" in planned.out

    applied = run_cli(
        capsys, "apply", str(spec), *uri, "--actor", "alice", "--commit", "1a2b3c4d", "--pr", "7"
    )
    assert applied.code == 0, applied
    assert "Apply complete" in applied.out

    again = run_cli(capsys, "plan", str(spec), *uri, "--detailed-exitcode")
    assert again.code == 0, again
    assert "No changes" in again.out

    c = client(backend)
    versions = {int(v.version): v for v in c.search_model_versions(f"name = '{model_name}'")}
    assert versions[1].current_stage == "Production"
    assert versions[2].current_stage == "Staging"
    assert versions[2].run_id == second.run_id
    assert versions[2].description.startswith("Decision tree.")
    assert "None -> Staging (commit 1a2b3c4, PR #7, by alice)" in versions[2].description
    record = read_record(versions[1].tags)
    assert record["change"].startswith("None -> Production")
    assert (record["actor"], record["commit"], record["pr"]) == ("alice", "1a2b3c4d", 7)
    assert versions[1].tags["model_type"] == "linear"
    registered = c.get_registered_model(model_name)
    assert {k: int(v) for k, v in registered.aliases.items()} == {"champion": 1, "challenger": 2}
    assert registered.tags["team"] == "rides"


def test_drift_is_shown_and_reverted(
    backend: str, model_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = log_regressor(backend)
    register(backend, model_name, run.run_id)
    register(backend, model_name, run.run_id)
    spec = write_spec(
        tmp_path,
        f"""
        version: 1
        models:
          {model_name}:
            aliases: {{champion: 1}}
            versions:
              - {{version: 1, stage: Production}}
              - {{version: 2, stage: Staging}}
        """,
    )
    uri = ["--tracking-uri", backend]
    assert run_cli(capsys, "apply", str(spec), *uri).code == 0
    c = client(backend)
    c.transition_model_version_stage(model_name, "2", "Production", archive_existing_versions=True)
    c.set_registered_model_alias(model_name, "champion", "2")

    drift = run_cli(capsys, "plan", str(spec), *uri, "--format", "markdown")
    assert drift.code == 0
    assert "drift" in drift.out
    assert "undo edits made in the registry by hand" in drift.out
    assert run_cli(capsys, "apply", str(spec), *uri).code == 0
    stages = {
        int(v.version): v.current_stage for v in c.search_model_versions(f"name = '{model_name}'")
    }
    assert stages == {1: "Production", 2: "Staging"}
    assert {k: int(v) for k, v in c.get_registered_model(model_name).aliases.items()} == {
        "champion": 1
    }


def test_saved_plan_applies_and_a_stale_one_is_refused(
    backend: str, model_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = log_regressor(backend)
    register(backend, model_name, run.run_id)
    spec = write_spec(
        tmp_path,
        f"version: 1\nmodels:\n  {model_name}:\n    versions:\n      - {{version: 1, stage: Staging}}\n",
    )
    uri = ["--tracking-uri", backend]
    out = tmp_path / "plan.json"
    assert run_cli(capsys, "plan", str(spec), *uri, "--out", str(out)).code == 0
    client(backend).set_model_version_tag(model_name, "1", "touched", "by-hand")
    client(backend).update_model_version(model_name, "1", description="edited meanwhile")
    stale = run_cli(capsys, "apply", str(out), *uri)
    assert stale.code == 1
    assert "changed since this plan was made" in stale.err
    assert "plan --out" in stale.err
    assert client(backend).get_model_version(model_name, "1").current_stage == "None"

    assert run_cli(capsys, "plan", str(spec), *uri, "--out", str(out)).code == 0
    fresh = run_cli(capsys, "apply", str(out), *uri)
    assert fresh.code == 0, fresh
    assert client(backend).get_model_version(model_name, "1").current_stage == "Staging"


def test_import_describes_the_registry_so_plan_is_empty(
    backend: str, model_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = log_regressor(backend)
    for _ in range(3):
        register(backend, model_name, run.run_id)  # three versions sharing one run
    c = client(backend)
    c.update_registered_model(model_name, description="multi\nline: description")
    c.transition_model_version_stage(model_name, "2", "Production")
    c.transition_model_version_stage(model_name, "3", "Production")  # an old registry allowed two
    c.set_model_version_tag(model_name, "2", "note", "it's: 'quoted' # not a comment")
    c.set_registered_model_alias(model_name, "champion", "3")
    out = tmp_path / "imported.yaml"
    imported = run_cli(
        capsys, "import", "--model", model_name, "--out", str(out), "--tracking-uri", backend
    )
    assert imported.code == 0, imported
    assert run_cli(capsys, "validate", str(out)).code == 0
    planned = run_cli(capsys, "plan", str(out), "--tracking-uri", backend, "--detailed-exitcode")
    assert planned.code == 0, planned.out + planned.err
    assert "No changes" in planned.out


def test_unknown_run_is_an_error_at_its_line_and_nothing_changes(
    backend: str, model_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(
        tmp_path,
        f"""
        version: 1
        models:
          {model_name}:
            versions:
              - run: {"ab" * 16}
                stage: Staging
        """,
    )
    result = run_cli(capsys, "apply", str(spec), "--tracking-uri", backend)
    assert result.code == 1
    assert f"{spec}:5:" in result.err
    assert "does not exist in the tracking server" in result.err
    assert client(backend).search_registered_models(f"name = '{model_name}'") == []


def test_metric_gate_then_production_handover(
    backend: str, model_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serving = log_regressor(backend, "linear")
    candidate = log_regressor(backend, "tree", seed=1)
    assert register(backend, model_name, serving.run_id) == 1
    assert register(backend, model_name, candidate.run_id) == 2
    c = client(backend)
    c.transition_model_version_stage(model_name, "1", "Production")
    text = """
        version: 1
        defaults: {{max_per_stage: {{Production: 1}}}}
        models:
          {name}:
            versions:
              - {{version: 2, stage: Production}}
            gates:
              Production:
                - metric: rmse
                  max: {max}
        """
    uri = ["--tracking-uri", backend]
    strict = write_spec(tmp_path, text.format(name=model_name, max=round(candidate.rmse - 0.01, 4)))
    blocked = run_cli(capsys, "apply", str(strict), *uri)
    assert blocked.code == 3, blocked
    assert "rmse" in blocked.out + blocked.err
    stages = {
        int(v.version): v.current_stage for v in c.search_model_versions(f"name = '{model_name}'")
    }
    assert stages == {1: "Production", 2: "None"}  # a failed gate applies nothing of the model

    passing = write_spec(
        tmp_path, text.format(name=model_name, max=round(candidate.rmse + 0.01, 4))
    )
    applied = run_cli(capsys, "apply", str(passing), *uri, "--actor", "alice")
    assert applied.code == 0, applied
    # the handover: v2 promoted with archive_existing_versions, so Production always had one holder
    versions = {int(v.version): v for v in c.search_model_versions(f"name = '{model_name}'")}
    assert {n: v.current_stage for n, v in versions.items()} == {1: "Archived", 2: "Production"}
    assert "Production -> Archived (replaced by version 2" in versions[1].description
    assert read_record(versions[2].tags)["change"].startswith("None -> Production")
    assert run_cli(capsys, "plan", str(passing), *uri, "--detailed-exitcode").code == 0
