"""The plan of a pull request, published: to the job summary first, then as the one comment.

reconcile/comment.py turns what a reviewer should read in the pull request (an invalid file, a
registry that cannot be read) into an Outcome; `publish` writes its body where it cannot be lost
(the job summary, an optional file) before it talks to GitHub.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.github import body as bodies
from mlflow_gitops.github.client import Action, GitHub, GitHubError, upsert_comment
from mlflow_gitops.github.context import Actions
from mlflow_gitops.plan.changes import Plan
from mlflow_gitops.plan.tree import TreePlan
from mlflow_gitops.secrets import redact

FORK_HINT = (
    "this pull request comes from a fork, and GitHub gives the workflows of fork pull requests no "
    "secrets, so the registry's address and credentials are not available. A maintainer can push "
    "the branch to this repository to get a plan; merging still applies only what passes."
)
NO_URI_HINT = (
    "set the repository secret MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_USERNAME/PASSWORD or "
    "MLFLOW_TRACKING_TOKEN if the server needs them), or tracking_uri: in the file"
)


@dataclass(frozen=True)
class Outcome:
    """What planning gave: the plan or the error, and the comment body that shows it."""

    body: str
    plan: Plan | None = None
    error: GitopsError | None = None
    tree: TreePlan | None = None  # the plan of a tree, grouped by registry then file


@dataclass(frozen=True)
class Published:
    """Where the body went."""

    action: Action | None  # None: not posted (a fork's pull request)
    url: str = ""
    note: str = ""


def tree_outcome(tree: TreePlan, file: Path, plan: Plan | None = None) -> Outcome:
    """The comment of a tree's plan (several files, several registries): grouped by registry,
    then by file; a single file against one registry reads exactly as before. `plan` is what
    the exit code is decided by (all the tree's changes)."""
    from mlflow_gitops.render.markdown import render_tree

    return Outcome(render_tree(tree, title=bodies.title(str(file))), plan=plan, tree=tree)


def publish(outcome: Outcome, file: Path, actions: Actions, out: Path | None) -> Published:
    """Write the body to `out` and the job summary, then create or update the comment."""
    name = str(file)
    foot = bodies.footer(name, actions.commit, actions.run_url)
    full = redact(outcome.body)
    if out is not None:
        _write(out, full + foot, "w")
    if actions.summary is not None:
        summary = bodies.fit(
            full,
            bodies.SUMMARY_LIMIT - len(foot.encode()),
            bodies.summary_note,
            lambda s: len(s.encode()),
            _unit(outcome),
        )
        _write(actions.summary, summary + foot, "a")
    saved = "the job summary" if actions.summary else str(out) if out else ""
    where = f"; the plan is in {saved}" if saved else ""
    pull = actions.pull_request
    if pull is None:
        raise GitopsError(
            "no pull request to comment on: run `comment` in a GitHub Actions job triggered by "
            "pull_request" + where,
            "preview the comment with `mlflow-gitops plan --format markdown`",
        )
    if pull.from_fork:
        return Published(
            None,
            note="pull request from a fork: GitHub gives its jobs a read-only token, so the plan "
            f"is not posted as a comment{where}",
        )
    if not actions.token:
        raise GitopsError(
            f"GITHUB_TOKEN is not set, so the plan cannot be posted{where}",
            "pass the job's token: env: GITHUB_TOKEN: ${{ github.token }}",
        )
    text = _comment(outcome, name, full, bodies.COMMENT_LIMIT - len(foot), actions.run_url) + foot
    github = GitHub(actions.api_url, actions.token)
    try:
        action, comment = upsert_comment(
            github, pull.repository, pull.number, text, lambda b: bodies.is_ours(b, name)
        )
    except GitHubError as exc:
        raise GitopsError(exc.message + where, exc.hint) from None
    return Published(action, comment.url)


def _unit(outcome: Outcome) -> Callable[[str], bool]:
    """What a cut counts: a model's heading, in a single file's plan or in a tree's."""
    from mlflow_gitops.render.markdown import model_heading

    heading = model_heading(outcome.tree) if outcome.tree is not None else "####"
    return lambda line: line.startswith(heading + " ")


def _comment(outcome: Outcome, file: str, full: str, limit: int, run_url: str | None) -> str:
    """The comment: the whole plan when it fits; a tree's too long plan becomes every file's
    counts, then its changes as far as they fit; a single file's is cut after a model. Both
    say where the full plan is."""
    from mlflow_gitops.render.markdown import (
        is_flat,
        render_tree_details,
        render_tree_overview,
    )

    tree = outcome.tree
    if tree is None or is_flat(tree):
        return bodies.fit(full, limit, bodies.comment_note(len(full), run_url))
    overview = redact(render_tree_overview(tree, title=bodies.title(file)))
    return bodies.tree_comment(full, overview, redact(render_tree_details(tree)), limit, run_url)


def _write(path: Path, text: str, mode: str) -> None:
    try:
        with path.open(mode, encoding="utf-8") as stream:
            stream.write(text)
    except OSError as exc:
        raise GitopsError(f"cannot write {path}: {exc.strerror}", "") from None
