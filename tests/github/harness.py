"""What the GitHub-flow tests share: the repository, pull request and commit of the synthesised
GitHub context, its event files, and a runner for a workflow job with GitHub's variables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.github.fake_github import TOKEN
from tests.github.workflow import Runner, base_env

ROOT = Path(__file__).parents[2]
REPOSITORY = "acme/ml-registry"
PR = 12
HEAD_SHA = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
RUN_ID = "4242"
MODEL = "nyc-taxi-regressor"  # planned by the pull-request tests
APPLIED = "trip-eta"  # applied by the apply test


@dataclass(frozen=True)
class Registry:
    uri: str


def pull_request_event(head_repository: str = REPOSITORY, sha: str = HEAD_SHA) -> dict[str, Any]:
    """The event file of a `pull_request` run (synchronize) for PR 12."""
    return {
        "action": "synchronize",
        "number": PR,
        "pull_request": {
            "number": PR,
            "head": {"sha": sha, "ref": "promote-v3", "repo": {"full_name": head_repository}},
            "base": {"ref": "main", "repo": {"full_name": REPOSITORY}},
        },
        "repository": {"full_name": REPOSITORY},
    }


def push_event(sha: str) -> dict[str, Any]:
    """The event file of the push to main that merged PR 12."""
    return {
        "ref": "refs/heads/main",
        "after": sha,
        "head_commit": {"id": sha, "message": f"Merge pull request #{PR} from alice/promote-v3"},
        "repository": {"full_name": REPOSITORY},
    }


def make_runner(
    tmp: Path,
    event: dict[str, Any],
    secrets: dict[str, str],
    api_url: str = "",
    sha: str = HEAD_SHA,
    extra_env: dict[str, str] | None = None,
) -> Runner:
    """A job on `tmp/workspace` with GitHub's variables for this event."""
    workspace = tmp / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    event_path = tmp / "event.json"
    event_path.write_text(json.dumps(event), encoding="utf-8")
    env = base_env(
        {
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_EVENT_NAME": "pull_request" if "pull_request" in event else "push",
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_SHA": sha,
            "GITHUB_ACTOR": "alice",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": api_url,
            "GITHUB_RUN_ID": RUN_ID,
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # a registry that is down fails at once
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
            **(extra_env or {}),
        }
    )
    return Runner(workspace, env, secrets, event, token=TOKEN)


# --- pushes to main, shaped as GitHub sends them (the pull-request loop's tests) -----------------

MERGE_MESSAGES = {
    # a merge commit: GitHub's own message names the pull request
    "merge": f"Merge pull request #{PR} from alice/promote-v3\n\nPromote v3",
    # a squash merge: the pull request's title and its number
    "squash": f"Promote v3 to Production (#{PR})\n\n* Promote v3\n* Fix the gate",
    # a rebase merge: the last rebased commit, which names no pull request
    "rebase": "Promote v3 to Production",
    # a push straight to main: no pull request explains it
    "direct": "Retag the champion by hand",
}


def merge_push_event(sha: str, kind: str) -> dict[str, Any]:
    """The `push` event of main after a merge of `kind` (merge, squash, rebase) or a direct push."""
    before = "0" * 39 + "1"
    commits = [
        {
            "id": sha,
            "message": MERGE_MESSAGES[kind],
            "author": {"name": "Alice", "username": "alice"},
            "distinct": True,
        }
    ]
    if kind == "rebase":  # every rebased commit of the pull request is in the push
        commits.insert(0, {**commits[0], "id": "e" * 40, "message": "Tighten the gate"})
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": sha,
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/{REPOSITORY}/compare/{before[:12]}...{sha[:12]}",
        "commits": commits,
        "head_commit": commits[-1],
        "pusher": {"name": "alice" if kind == "direct" else "web-flow"},
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
        "sender": {"login": "alice"},
    }
