"""The job's context from GitHub Actions' variables and event file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlflow_gitops.github.context import DEFAULT_API_URL, actions_context


def _env(tmp_path: Path, event: dict[str, Any], **extra: str) -> dict[str, str]:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event), encoding="utf-8")
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/reg",
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_SHA": "f" * 40,
        "GITHUB_RUN_ID": "7",
        "GITHUB_SERVER_URL": "https://github.com",
        **extra,
    }


def _pull(head: object) -> dict[str, Any]:
    return {"pull_request": {"number": 5, "head": {"sha": "a" * 40, "repo": head}}}


@pytest.mark.parametrize(
    ("head", "fork"),
    [
        ({"full_name": "acme/reg"}, False),
        ({"full_name": "mallory/reg"}, True),
        (None, True),  # the fork was deleted
    ],
)
def test_pull_requests_and_forks(tmp_path: Path, head: object, fork: bool) -> None:
    actions = actions_context(_env(tmp_path, _pull(head), GITHUB_TOKEN="t0k3n"))
    assert actions.active
    assert actions.pull_request is not None
    assert actions.pull_request.repository == "acme/reg"
    assert actions.pull_request.number == 5
    assert actions.pull_request.from_fork is fork
    assert actions.commit == "a" * 40  # the head that was reviewed, not the merge commit
    assert actions.run_url == "https://github.com/acme/reg/actions/runs/7"
    assert actions.token == "t0k3n"
    assert actions.api_url == DEFAULT_API_URL


def test_a_push_has_no_pull_request(tmp_path: Path) -> None:
    event = {"head_commit": {"message": "Merge pull request #5 from a/b"}}
    actions = actions_context(_env(tmp_path, event, GITHUB_API_URL="https://ghe.example/api/v3/"))
    assert actions.pull_request is None
    assert actions.api_url == "https://ghe.example/api/v3"


def test_outside_actions_nothing_is_known() -> None:
    actions = actions_context({"GITHUB_TOKEN": "x"})
    assert not actions.active
    assert actions.pull_request is None
    assert actions.token is None
