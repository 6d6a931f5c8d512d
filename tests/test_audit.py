"""Audit context from GitHub Actions' environment, and from git outside it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from mlflow_gitops.audit import from_environment


def test_pull_request_event(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 42, "head": {"sha": "feedbeef" * 5}}}))
    ctx = from_environment(
        env={
            "GITHUB_ACTIONS": "true",
            "GITHUB_SHA": "merge" * 8,
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_ACTOR": "alice",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "acme/models",
            "GITHUB_RUN_ID": "99",
        }
    )
    assert ctx.commit == "feedbeef" * 5
    assert ctx.pr == 42
    assert ctx.actor == "alice"
    assert ctx.run_url == "https://github.com/acme/models/actions/runs/99"
    assert ctx.describe() == "commit feedbee, PR #42, by alice"


def test_push_after_merge_finds_the_pr_in_the_commit_message(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"head_commit": {"message": "Promote v3 (#17)"}}))
    ctx = from_environment(
        env={"GITHUB_SHA": "abc1234", "GITHUB_EVENT_PATH": str(event), "GITHUB_ACTOR": "bot"}
    )
    assert ctx.pr == 17


def test_outside_actions_git_and_overrides(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git(
        "-c",
        "user.name=Carol",
        "-c",
        "user.email=c@x",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "Merge pull request #5 from x/y",
    )
    git("config", "user.name", "Carol")
    ctx = from_environment(env={}, cwd=tmp_path)
    assert ctx.commit is not None
    assert len(ctx.commit) == 40
    assert ctx.pr == 5
    assert ctx.actor == "Carol"
    assert (
        from_environment(env={}, cwd=tmp_path, actor="dave", commit="123").describe()
        == "commit 123, PR #5, by dave"
    )
