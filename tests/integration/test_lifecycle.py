"""propose, history, rollback, deletion and stage-to-alias migration on a real registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_gitops.spec.load import load
from tests.cli_runner import run_cli
from tests.helpers import write_spec
from tests.integration.mlflow_helpers import client, log_regressor, register

pytestmark = [pytest.mark.integration]

ODD = """\
# Our models.   Reviewed by the ML platform team.
version: 1
models:
  {name}:   # the one that serves trips
    description: "Trip duration"
    versions:
      - {{version: 1,   stage: Production}}   # odd spacing, kept
      # v2 is being evaluated
      - version: 2
        stage:   staging

# trailing comment
"""


@pytest.fixture(autouse=True)
def _no_ambient_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_propose_adds_the_best_run_and_keeps_the_file(
    sqlite_uri: str, model_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = f"propose-{model_name}"
    runs = [
        log_regressor(sqlite_uri, kind, seed, experiment)
        for kind, seed in (("linear", 0), ("tree", 1), ("linear", 2))
    ]
    best = min(runs, key=lambda r: r.rmse)
    worst = max(runs, key=lambda r: r.rmse)  # versions 1 and 2; the best run is not registered
    register(sqlite_uri, model_name, worst.run_id)
    register(sqlite_uri, model_name, worst.run_id)
    file = write_spec(tmp_path, ODD.format(name=model_name))
    before = file.read_text()
    result = run_cli(
        capsys, "propose", model_name, "--experiment", experiment, "--filter", "metrics.rmse < 100",
        "--order-by", "metrics.rmse ASC", "--stage", "staging", "--file", str(file), "--tracking-uri", sqlite_uri,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert best.run_id in result.out
    after = file.read_text()
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert added == [f"      - run: {best.run_id}/model", "        stage: Staging"]
    assert all(line in after.splitlines() for line in before.splitlines())  # nothing else touched
    assert "+      - run:" in result.out  # the diff is shown
    assert load(file).spec.models[model_name].versions[-1].run == f"{best.run_id}/model"

    bad = run_cli(capsys, "propose", model_name, "--experiment", experiment, "--filter", "metrics.rmse <<< 1",
                  "--file", str(file), "--tracking-uri", sqlite_uri)  # fmt: skip
    assert bad.code == 1
    assert "MLflow refused the search" in bad.err
    assert "Traceback" not in bad.err
    assert file.read_text() == after


def test_history_rollback_and_git_revert(
    backend: str, model_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = log_regressor(backend)
    for _ in range(2):
        register(backend, model_name, run.run_id)
    uri = ["--tracking-uri", backend]
    v1 = "version: 1\nmodels:\n  {m}:\n    versions:\n      - version: 1\n        stage: Production  # serving\n      - version: 2\n        stage: Staging\n"
    v2 = "version: 1\nmodels:\n  {m}:\n    versions:\n      - version: 1\n        stage: Archived\n      - version: 2\n        stage: Production\n"
    file = write_spec(tmp_path, v1.format(m=model_name))
    assert (
        run_cli(
            capsys,
            "apply",
            str(file),
            *uri,
            "--actor",
            "alice",
            "--pr",
            "1",
            "--commit",
            "aaaaaaa1",
        ).code
        == 0
    )
    file.write_text(v2.format(m=model_name))
    assert (
        run_cli(
            capsys, "apply", str(file), *uri, "--actor", "bob", "--pr", "2", "--commit", "bbbbbbb2"
        ).code
        == 0
    )

    hist = run_cli(capsys, "history", model_name, *uri, "--file", str(file))
    assert hist.code == 0, hist.err
    lines = [line for line in hist.out.splitlines() if "->" in line]
    # bob's apply, newest first: the archival of v1 came after the promotion of v2
    assert "v1    Production -> Archived" in lines[0]
    assert "v2    Staging -> Production" in lines[1]
    assert all("(commit bbbbbbb, PR #2, by bob)" in line for line in lines[:2])
    assert any("None -> Production" in line and "alice" in line for line in lines)
    as_json = run_cli(
        capsys,
        "history",
        model_name,
        *uri,
        "--file",
        str(file),
        "--format",
        "json",
        "--version",
        "1",
    )
    assert '"schema_version": 1' in as_json.out

    # rollback edits the file (to go through a PR); the apply restores v1 in one go
    rolled = run_cli(capsys, "rollback", model_name, "--file", str(file), *uri)
    assert rolled.code == 0, rolled.err
    assert "Production back to version 1" in rolled.out
    assert run_cli(capsys, "apply", str(file), *uri).code == 0
    stages = {
        int(v.version): v.current_stage
        for v in client(backend).search_model_versions(f"name = '{model_name}'")
    }
    assert stages == {1: "Production", 2: "Archived"}

    # a git revert of the promotion (the file back to v2 in Production) is one apply too
    file.write_text(v2.format(m=model_name))
    assert run_cli(capsys, "apply", str(file), *uri).code == 0
    stages = {
        int(v.version): v.current_stage
        for v in client(backend).search_model_versions(f"name = '{model_name}'")
    }
    assert stages == {1: "Archived", 2: "Production"}


def test_delete_and_migrate_to_aliases(
    sqlite_uri: str, model_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = log_regressor(sqlite_uri)
    for _ in range(3):
        register(sqlite_uri, model_name, run.run_id)
    c = client(sqlite_uri)
    c.transition_model_version_stage(model_name, "2", "Production")
    c.transition_model_version_stage(model_name, "3", "Staging")
    c.transition_model_version_stage(model_name, "1", "Archived")
    imported = tmp_path / "aliases.yaml"
    result = run_cli(
        capsys,
        "import",
        "--model",
        model_name,
        "--aliases-from-stages",
        "--out",
        str(imported),
        "--tracking-uri",
        sqlite_uri,
    )
    assert result.code == 0, result.err
    text = imported.read_text()
    assert "stage:" not in text  # aliases only
    assert run_cli(capsys, "apply", str(imported), "--tracking-uri", sqlite_uri).code == 0
    aliases = {k: int(v) for k, v in c.get_registered_model(model_name).aliases.items()}
    assert aliases == {"champion": 2, "challenger": 3}

    spec = write_spec(
        tmp_path,
        f"version: 1\nmodels:\n  {model_name}:\n    versions:\n      - {{version: 1, deleted: true}}\n      - {{version: 3, deleted: true}}\n",
    )
    refused = run_cli(capsys, "apply", str(spec), "--tracking-uri", sqlite_uri)
    assert refused.code == 3
    assert "deleting v3 refused: it is in Staging" in refused.out
    assert len(c.search_model_versions(f"name = '{model_name}'")) == 3
    spec.write_text(
        f"version: 1\nmodels:\n  {model_name}:\n    versions:\n      - {{version: 1, deleted: true}}\n"
    )
    assert run_cli(capsys, "apply", str(spec), "--tracking-uri", sqlite_uri).code == 0
    assert sorted(int(v.version) for v in c.search_model_versions(f"name = '{model_name}'")) == [
        2,
        3,
    ]
    assert (
        run_cli(capsys, "plan", str(spec), "--tracking-uri", sqlite_uri, "--detailed-exitcode").code
        == 0
    )


def test_propose_a_registered_run_adds_its_version_not_a_registration(
    backend: str, model_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = f"registered-{model_name}"
    worse = log_regressor(backend, "tree", 1, experiment)
    best = log_regressor(backend, "linear", 0, experiment)
    assert best.rmse < worse.rmse
    assert register(backend, model_name, worse.run_id) == 1
    assert register(backend, model_name, best.run_id) == 2
    file = write_spec(
        tmp_path, f"version: 1\nmodels:\n  {model_name}:\n    versions:\n      - version: 1\n"
    )
    uri = ["--tracking-uri", backend]
    result = run_cli(
        capsys, "propose", model_name, "--experiment", experiment, "--order-by", "metrics.rmse ASC",
        "--stage", "Staging", "--file", str(file), *uri,
    )  # fmt: skip
    assert result.code == 0, result.err
    rows = {
        w[1]: line for line in result.out.splitlines() if (w := line.split())[:1] in (["1"], ["2"])
    }
    assert " v2 " in rows[best.run_id]
    assert " v1 " in rows[worse.run_id]
    assert file.read_text().endswith(
        "      - version: 1\n      - version: 2\n        stage: Staging\n"
    )

    assert run_cli(capsys, "apply", str(file), *uri).code == 0
    versions = {
        int(v.version): v for v in client(backend).search_model_versions(f"name = '{model_name}'")
    }
    assert sorted(versions) == [1, 2]  # no second registration of the run
    assert versions[2].current_stage == "Staging"
