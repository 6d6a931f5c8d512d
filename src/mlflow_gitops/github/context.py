"""Where a GitHub Actions job runs: the pull request, the token, the run, the job summary."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlflow_gitops.audit import _event, from_environment

DEFAULT_API_URL = "https://api.github.com"


@dataclass(frozen=True)
class PullRequest:
    repository: str  # owner/name of the base repository, where the comment goes
    number: int
    from_fork: bool  # GitHub gives such jobs a read-only token and no secrets


@dataclass(frozen=True)
class Actions:
    """What the job knows about itself; every field is None outside GitHub Actions."""

    active: bool = False  # running in GitHub Actions
    api_url: str = DEFAULT_API_URL
    token: str | None = None
    summary: Path | None = None
    run_url: str | None = None
    commit: str | None = None
    pull_request: PullRequest | None = None


def actions_context(env: Mapping[str, str] | None = None) -> Actions:
    """The job's context from GITHUB_* variables and the event file (GITHUB_EVENT_PATH)."""
    env = dict(os.environ if env is None else env)
    if env.get("GITHUB_ACTIONS") != "true":
        return Actions()
    audit = from_environment(env)
    event = _event(env.get("GITHUB_EVENT_PATH"))
    repository = env.get("GITHUB_REPOSITORY") or _dig(event, "repository", "full_name")
    pull = None
    if audit.pr is not None and "pull_request" in event and repository:
        head = _dig(event, "pull_request", "head", "repo", "full_name")
        # a deleted fork leaves head.repo null: treat it as a fork, it gets no secrets either
        pull = PullRequest(repository, audit.pr, from_fork=head != repository)
    summary = env.get("GITHUB_STEP_SUMMARY")
    return Actions(
        active=True,
        api_url=(env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
        token=env.get("GITHUB_TOKEN") or None,
        summary=Path(summary) if summary else None,
        run_url=audit.run_url,
        commit=audit.commit,
        pull_request=pull,
    )


def _dig(data: object, *keys: str) -> str | None:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data if isinstance(data, str) else None
