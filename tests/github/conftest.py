"""Fixtures for the GitHub flow: a fake GitHub API on loopback, a real MLflow registry with real
scikit-learn models, and a runner for the workflows' steps with a synthesised GitHub context."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.github.fake_github import TOKEN, FakeGitHub, serve
from tests.github.workflow import Runner, base_env
from tests.integration.mlflow_helpers import log_regressor, register

ROOT = Path(__file__).parents[2]
REPOSITORY = "acme/ml-registry"
PR = 12
HEAD_SHA = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
RUN_ID = "4242"
MODEL = "nyc-taxi-regressor"  # planned by the pull-request tests
APPLIED = "trip-eta"  # applied by the apply test


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    server = serve(fake)
    yield fake
    server.shutdown()


@dataclass(frozen=True)
class Registry:
    uri: str


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """A sqlite registry: three versions of MODEL and two of APPLIED, from real logged runs."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('registry')}/mlflow.db"
    runs = [log_regressor(uri, "linear"), log_regressor(uri, "tree", seed=1)]
    runs.append(log_regressor(uri, "linear", seed=2))
    for run in runs:
        register(uri, MODEL, run.run_id)
    for run in runs[:2]:
        register(uri, APPLIED, run.run_id)
    return Registry(uri)


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
