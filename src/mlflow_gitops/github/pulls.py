"""What GitHub's API says about a pull request: the merged one of a commit, its author, labels
(and who set them), files, approving reviews, and each person's team memberships (read with a
separate token: the job's own cannot read an organization's teams)."""

from __future__ import annotations

from typing import Any

from mlflow_gitops.github.client import GitHub, GitHubError
from mlflow_gitops.policy.facts import TEAMS_TOKEN, Approval, PullFacts


def merged_pulls(github: GitHub, repository: str, sha: str) -> list[int]:
    """The merged pull requests of a commit (a merge, squash or rebase merge commit names one);
    [] for a push that no pull request explains."""
    found = github.get_all(
        f"/repos/{repository}/commits/{sha}/pulls", "list the pull requests of the commit"
    )
    merged = [p for p in found if isinstance(p, dict) and p.get("merged_at")]
    exact = [p for p in merged if p.get("merge_commit_sha") == sha]
    return sorted(int(p["number"]) for p in (exact or merged) if isinstance(p.get("number"), int))


def pull_facts(github: GitHub, repository: str, number: int, teams: GitHub | None) -> PullFacts:
    """The pull request's author, labels, files and approvals; memberships through `teams`
    (None: the teams token is not set, and a rule that needs teams says so)."""
    base = f"/repos/{repository}"
    pull = github.get(f"{base}/pulls/{number}", "read the pull request")
    author = _login(pull.get("user")) if isinstance(pull, dict) else None
    labels = tuple(
        str(label.get("name"))
        for label in (pull.get("labels") or [] if isinstance(pull, dict) else [])
        if isinstance(label, dict)
    )
    latest: dict[str, str] = {}  # a reviewer's latest review that approves or asks for changes
    for review in github.get_all(f"{base}/pulls/{number}/reviews", "list the reviews"):
        user = _login(review.get("user")) if isinstance(review, dict) else None
        state = str(review.get("state", "")) if isinstance(review, dict) else ""
        if user and state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[user] = state
    approvers = sorted(u for u, state in latest.items() if state == "APPROVED")
    files = tuple(
        str(f.get("filename"))
        for f in github.get_all(f"{base}/pulls/{number}/files", "list the changed files")
        if isinstance(f, dict)
    )
    setters: dict[str, str] = {}
    for event in github.get_all(f"{base}/issues/{number}/events", "list the label events"):
        if isinstance(event, dict) and event.get("event") == "labeled":
            label, actor = event.get("label"), _login(event.get("actor"))
            if isinstance(label, dict) and actor and label.get("name") in labels:
                setters[str(label["name"])] = actor
    org = repository.split("/", maxsplit=1)[0]
    people = sorted({*approvers, *setters.values()})
    teams_of, problem = memberships(teams, org, people)
    return PullFacts(
        number=number,
        author=author,
        approvals=tuple(
            Approval(u, teams_of.get(u, ()) if problem is None else None) for u in approvers
        ),
        labels=labels,
        files=files,
        label_setters=setters,
        teams_of=teams_of,
        teams_problem=problem,
    )


def memberships(
    teams: GitHub | None, org: str, people: list[str]
) -> tuple[dict[str, tuple[str, ...]], str | None]:
    """Each person's teams in the organization (slugs), or why they cannot be read."""
    if not people:
        return {}, None
    if teams is None:
        return {}, (
            f"team memberships cannot be read: {TEAMS_TOKEN} is not set (a token with "
            f"members: read on {org}; the job's own token cannot read teams)"
        )
    try:
        slugs = [
            str(t["slug"])
            for t in teams.get_all(f"/orgs/{org}/teams", "list the organization's teams")
            if isinstance(t, dict) and t.get("slug")
        ]
        out: dict[str, tuple[str, ...]] = {}
        for person in people:
            out[person] = tuple(s for s in slugs if _member(teams, org, s, person))
    except GitHubError as exc:
        return {}, (
            f"team memberships cannot be read with {TEAMS_TOKEN}: {exc.message} (it needs "
            f"members: read on {org})"
        )
    return out, None


def _member(teams: GitHub, org: str, slug: str, person: str) -> bool:
    try:
        found = teams.get(
            f"/orgs/{org}/teams/{slug}/memberships/{person}", "read a team membership"
        )
    except GitHubError as exc:
        if exc.status == 404:  # not a member
            return False
        raise
    return isinstance(found, dict) and found.get("state") == "active"


def _login(user: Any) -> str | None:
    return str(user["login"]) if isinstance(user, dict) and user.get("login") else None
