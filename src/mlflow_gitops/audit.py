"""Who changed what, from which commit and pull request: GitHub Actions' environment, or git."""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AuditContext:
    """What every applied change is annotated with."""

    commit: str | None = None
    pr: int | None = None
    actor: str | None = None
    run_url: str | None = None

    @property
    def short_commit(self) -> str | None:
        """The first 7 characters, as git shows them."""
        return self.commit[:7] if self.commit else None

    def describe(self) -> str:
        """`commit 1a2b3c4, PR #12, by alice`."""
        parts = []
        if self.short_commit:
            parts.append(f"commit {self.short_commit}")
        if self.pr is not None:
            parts.append(f"PR #{self.pr}")
        if self.actor:
            parts.append(f"by {self.actor}")
        return ", ".join(parts)


_MERGE_PR = re.compile(r"(?:Merge pull request #|\(#)(\d+)")


def from_environment(
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    commit: str | None = None,
    actor: str | None = None,
    pr: int | None = None,
) -> AuditContext:
    """GitHub Actions' variables when present, else git and the local user; overrides win."""
    env = dict(os.environ) if env is None else env
    if env.get("GITHUB_ACTIONS") == "true" or env.get("GITHUB_SHA"):
        event = _event(env.get("GITHUB_EVENT_PATH"))
        run_url = None
        if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
            server = env.get("GITHUB_SERVER_URL", "https://github.com")
            run_url = f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
        pr_number = _pr_from_event(event)
        sha = env.get("GITHUB_SHA")
        pull = event.get("pull_request")
        if isinstance(pull, dict):
            # on a pull_request event GITHUB_SHA is a merge commit; the head is what was reviewed
            head = pull.get("head")
            sha = (head.get("sha") if isinstance(head, dict) else None) or sha
        return AuditContext(
            commit=commit or sha,
            pr=pr if pr is not None else pr_number,
            actor=actor or env.get("GITHUB_ACTOR"),
            run_url=run_url,
        )
    head = commit or _git(["rev-parse", "HEAD"], cwd)
    message = _git(["log", "-1", "--format=%s"], cwd) if head else None
    found = _MERGE_PR.search(message or "")
    return AuditContext(
        commit=head,
        pr=pr if pr is not None else (int(found.group(1)) if found else None),
        actor=actor or _git(["config", "user.name"], cwd) or _user(),
    )


def _event(path: str | None) -> dict[str, object]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pr_from_event(event: dict[str, object]) -> int | None:
    pr = event.get("pull_request")
    if isinstance(pr, dict) and isinstance(pr.get("number"), int):
        return int(pr["number"])
    # a push to main after a merge: the merge or squash commit message names the PR
    head = event.get("head_commit")
    if isinstance(head, dict):
        found = _MERGE_PR.search(str(head.get("message", "")))
        if found:
            return int(found.group(1))
    return None


def _git(args: list[str], cwd: Path | None) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
