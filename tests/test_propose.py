"""propose on values: a run already registered is proposed as its version, never registered again."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.observed import ModelState, RunSummary, VersionState
from mlflow_gitops.propose import propose, registered_versions
from mlflow_gitops.render.text import render_runs as runs_table
from mlflow_gitops.spec.load import load_text

RUN = "3f2a9c4e5b6d7a8f9e0d1c2b3a4f5e6d"
OTHER = "aa" * 16
# how MLflow 2.x and 3.x record `runs:/<id>/model`: the run's artifacts, or a logged model
LIVE = ModelState(
    name="m",
    versions=(
        VersionState(1, run_id=OTHER, source=f"mlflow-artifacts:/1/{OTHER}/artifacts/model"),
        VersionState(2, run_id=RUN, source=f"mlflow-artifacts:/1/{RUN}/artifacts/model"),
        VersionState(3, run_id=RUN, source=f"mlflow-artifacts:/1/{RUN}/artifacts/other"),
    ),
)
FILE = """\
version: 1
models:
  m:   # kept
    versions:
      - version: 1
        stage: Production
"""


def test_runs_table_shows_the_version_of_each_registered_run() -> None:
    runs = [RunSummary(run_id=RUN, metrics={"rmse": 5.0}), RunSummary(run_id="b" * 32)]
    table = runs_table(runs, "metrics.rmse ASC", registered_versions(LIVE, [RUN, "b" * 32]))
    header, first, second = table.splitlines()
    assert "version" in header
    assert f"{RUN}           5  " in first
    assert " v2 " in first
    assert " — " in second.split("b" * 32)[1]


@pytest.mark.parametrize(
    ("stage", "added"),
    [
        ("Staging", ["      - version: 2", "        stage: Staging"]),
        (None, ["      - version: 2"]),
    ],
)
def test_a_registered_run_is_added_as_its_version(
    tmp_path: Path, stage: str | None, added: list[str]
) -> None:
    edit = propose(FILE, tmp_path / "registry.yaml", "m", RUN, stage, LIVE)
    new_lines = [line for line in edit.text.splitlines() if line not in FILE.splitlines()]
    assert new_lines == added
    assert "run:" not in edit.text
    assert "version 2 of m" in edit.summary
    entries = load_text(edit.text, tmp_path / "registry.yaml").spec.models["m"].versions
    assert [e.version for e in entries] == [1, 2]


def test_a_version_already_in_the_file_is_pointed_to(tmp_path: Path) -> None:
    text = FILE + "      - version: 2\n        stage: None\n"
    edit = propose(text, tmp_path / "registry.yaml", "m", RUN, "Staging", LIVE)
    assert edit.text == FILE + "      - version: 2\n        stage: Staging\n"
    with pytest.raises(GitopsError, match=r"is version 2 of m, already in registry\.yaml"):
        propose(edit.text, tmp_path / "registry.yaml", "m", RUN, "Staging", LIVE)


def test_the_newest_of_several_registrations_is_chosen(tmp_path: Path) -> None:
    live = ModelState(
        name="m",
        versions=(*LIVE.versions, VersionState(4, run_id=RUN, source=f"runs:/{RUN}/model")),
    )
    assert registered_versions(live, [RUN]) == {RUN: [2, 4]}
    edit = propose(FILE, tmp_path / "registry.yaml", "m", RUN, None, live)
    assert "      - version: 4" in edit.text


def test_a_run_never_registered_is_added_as_a_run(tmp_path: Path) -> None:
    edit = propose(FILE, tmp_path / "registry.yaml", "m", "c" * 32, "Staging", LIVE)
    assert f"      - run: {'c' * 32}/model\n        stage: Staging\n" in edit.text
    assert propose(FILE, tmp_path / "r.yaml", "new", "c" * 32, None, None).summary.startswith(
        "added run"
    )
