"""Reading never changes a registry: a SQLite file an older MLflow (2.9) wrote is refused by plan
and import, unchanged, with the command that upgrades it; upgraded when the user chooses so."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.cli_runner import run_cli
from tests.mlflow2 import mlflow29_python

URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")

pytestmark = pytest.mark.integration

WRITE = """
import sys, mlflow
from mlflow import MlflowClient
mlflow.set_tracking_uri(sys.argv[1])
client = MlflowClient()
client.create_registered_model("old-model")
run = client.create_run(client.create_experiment("e"))
client.create_model_version("old-model", "runs:/%s/model" % run.info.run_id, run.info.run_id)
"""


def revision(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])


@pytest.fixture(scope="module")
def old_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry database written by MLflow 2.9 (one model, one version)."""
    db = tmp_path_factory.mktemp("old") / "mlflow.db"
    # this database alone: no URI an earlier test left in the environment
    env = {k: v for k, v in os.environ.items() if k not in URI_VARIABLES}
    subprocess.run(
        [mlflow29_python(), "-c", WRITE, f"sqlite:///{db}"],
        check=True,
        capture_output=True,
        env=env,
    )
    return db


def test_an_older_database_is_refused_unchanged_then_upgraded_when_chosen(
    old_db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow

    db = tmp_path / "mlflow.db"
    db.write_bytes(old_db.read_bytes())
    uri = f"sqlite:///{db}"
    before = revision(db)
    spec = tmp_path / "registry.yaml"
    spec.write_text(f"version: 1\ntracking_uri: {uri}\nmodels:\n  old-model: {{}}\n")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_GITOPS_UPGRADE_DB", raising=False)

    for args in (("plan", str(spec)), ("import", "--out", str(tmp_path / "out.yaml"))):
        extra = ("--tracking-uri", uri) if args[0] == "import" else ()
        result = run_cli(capsys, *args, *extra)
        assert result.code != 0, result.out
        said = result.out + result.err
        assert "schema is out of date" in said
        assert str(db) in said
        assert before in said
        assert mlflow.__version__ in said
        assert f"mlflow db upgrade {uri}" in said
        assert "MLFLOW_GITOPS_UPGRADE_DB=1" in said
        assert revision(db) == before  # the older MLflow can still open it
    assert not (tmp_path / "out.yaml").exists()

    monkeypatch.setenv("MLFLOW_GITOPS_UPGRADE_DB", "1")
    result = run_cli(capsys, "import", "--tracking-uri", uri, "--out", str(tmp_path / "out.yaml"))
    assert result.code == 0, result.out + result.err
    assert "old-model" in (tmp_path / "out.yaml").read_text()
    assert revision(db) != before
    from mlflow.store.db.utils import _get_latest_schema_revision

    assert revision(db) == _get_latest_schema_revision()  # type: ignore[no-untyped-call]
