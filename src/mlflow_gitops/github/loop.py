"""The pull request as the loop (I/O): the rules judged with the pull request's facts read from
GitHub, and after an apply on main the merged pull request's comment, the merge commit's status
`mlflow-gitops/apply` and a deployment per registry. The use cases sequence it
(`reconcile/loop.py` for apply, `reconcile/comment.py` for the comment).

Writes happen only in a push job (after a merge) with the job's token passed to the step; a
pull_request job from a fork writes nothing (its token is read-only, and it gets no secrets)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.github import applied as bodies
from mlflow_gitops.github.client import GitHub, GitHubError
from mlflow_gitops.github.context import Actions, actions_context
from mlflow_gitops.policy.facts import TEAMS_TOKEN, PullFacts

if TYPE_CHECKING:
    from mlflow_gitops.github.publish import Outcome
    from mlflow_gitops.outcome import ApplyOutcome
    from mlflow_gitops.plan.tree import TreePlan
    from mlflow_gitops.policy.evaluate import PolicyReport
    from mlflow_gitops.spec.policies import PolicyRule

STATUS_CONTEXT = "mlflow-gitops/apply"
WRITE_HINT = (
    "give the apply job `permissions: {contents: read, pull-requests: write, statuses: write, "
    "deployments: write}` and pass its token to the step: env: GITHUB_TOKEN: ${{ github.token }}"
)


def policies_of(target: Path) -> list[PolicyRule]:
    """The root file's rules (a saved plan's: those of the file it was made from); none when the
    file cannot be read here (planning reports that)."""
    from mlflow_gitops.plan.saved import is_saved_plan, load_plan
    from mlflow_gitops.spec.load import parse_file, read_text

    try:
        if is_saved_plan(target):
            saved = load_plan(target).file
            if not saved:
                return []
            target = Path(saved)
        return list(parse_file(read_text(target), target, str(target)).spec.policies or [])
    except GitopsError:
        return []


def _clients(actions: Actions, env: Mapping[str, str]) -> tuple[GitHub | None, GitHub | None]:
    job = GitHub(actions.api_url, actions.token) if actions.token else None
    teams_token = env.get(TEAMS_TOKEN)
    return job, (GitHub(actions.api_url, teams_token) if teams_token else None)


def read_facts(
    actions: Actions, repository: str | None, number: int | None, env: Mapping[str, str]
) -> PullFacts:
    """The pull request's facts, or empty facts that say why there are none."""
    from mlflow_gitops.github.pulls import pull_facts

    if number is None or repository is None:
        return PullFacts(problem="no pull request is known for this commit")
    job, teams = _clients(actions, env)
    if job is None:
        return PullFacts(number=number, problem="GITHUB_TOKEN is not set: reviews are unknown")
    try:
        return pull_facts(job, repository, number, teams)
    except GitHubError as exc:
        return PullFacts(
            number=number, problem=f"cannot read pull request #{number}: {exc.message}"
        )


# --- plan time: the comment lists, per change, the rules it meets and what it lacks ------------


def with_policies(outcome: Outcome, file: Path, actions: Actions, now: datetime) -> Outcome:
    """The comment's outcome with a Policies section when the file has rules; unmet rules are
    shown, never blocking at plan time (the apply judges them again with the merged reviews)."""
    from mlflow_gitops.github.policy_body import policies_section
    from mlflow_gitops.policy.evaluate import judge

    rules = policies_of(file) if outcome.tree is not None else []
    if not rules or outcome.tree is None:
        return outcome
    pull = actions.pull_request
    facts = read_facts(
        actions, pull.repository if pull else None, pull.number if pull else None, os.environ
    )
    report = judge(rules, outcome.tree, facts, now)
    return replace(outcome, body=outcome.body + "\n" + policies_section(report, facts))


# --- apply time -----------------------------------------------------------------------------


@dataclass
class ApplyLoop:
    """One apply's part in the loop: the merged pull request(s) of the commit, the rules and
    their report, and where the results go."""

    actions: Actions
    repository: str | None
    rules: list[PolicyRule]
    now: Callable[[], datetime]
    env: Mapping[str, str]
    file: str = "registry.yaml"  # as `comment` named it: the key of the sticky comment
    pulls: list[int] = field(default_factory=list)
    problem: str | None = None  # why the pull requests of the commit are unknown
    report: PolicyReport | None = None

    @property
    def writes(self) -> bool:
        """A push job (after a merge) in GitHub Actions: the results go to GitHub."""
        return (
            self.actions.active
            and self.actions.pull_request is None
            and bool(self.repository and self.actions.commit)
        )

    @property
    def pr(self) -> int | None:
        """The merged pull request, for the audit record (a rebase merge names none)."""
        return self.pulls[0] if self.pulls else None

    def judge(self, tree: TreePlan) -> TreePlan:
        """The plan with every model an unmet rule blocks blocked (apply's hook)."""
        from mlflow_gitops.policy.evaluate import enforce, judge

        if not self.rules:
            return tree
        facts = read_facts(self.actions, self.repository, self.pr, self.env)
        if self.pr is None and self.problem:  # say why there is no pull request
            facts = replace(facts, problem=self.problem)
        self.report = judge(self.rules, tree, facts, self.now())
        return enforce(tree, self.report)

    def finish(self, outcome: ApplyOutcome, say: Callable[[str], None]) -> bool:
        """Tell GitHub what happened; False when GitHub could not be told (the command then
        fails when the apply itself succeeded, so a result that nobody sees is never green)."""
        if not self.writes:
            return True
        if not self.actions.token:
            say(
                "GITHUB_TOKEN is not set: the pull request, the commit status and the "
                f"deployments are not updated (hint: {WRITE_HINT})\n"
            )
            return True
        github = GitHub(self.actions.api_url, self.actions.token)
        try:
            for line in report(github, self, outcome):
                say(line + "\n")
        except GitHubError as exc:
            say(f"error: {exc.message}\n  hint: {WRITE_HINT}\n")
            return False
        return True

    def refused(self, error: GitopsError, say: Callable[[str], None]) -> None:
        """An apply that stopped before its first change (refused permissions, the lock held,
        a stale plan): the comment and the commit status say so too. Best effort: the error
        itself is what the job reports."""
        if not self.writes or not self.actions.token:
            return
        github = GitHub(self.actions.api_url, self.actions.token)
        section = bodies.refused_section(error.message, self.actions.commit, self.actions.run_url)
        try:
            for line in _post_section(github, self, section):
                say(line + "\n")
            say(post_status(github, self, "failure", f"apply failed: {error.message}") + "\n")
        except GitHubError as exc:
            say(f"error: {exc.message}\n  hint: {WRITE_HINT}\n")


def start(
    target: Path, now: Callable[[], datetime], env: Mapping[str, str] | None = None
) -> ApplyLoop:
    """The loop of `apply target`: the rules, and in a push job the merged pull requests of
    the commit (GITHUB_SHA)."""
    from mlflow_gitops.github.pulls import merged_pulls

    env = dict(os.environ if env is None else env)
    actions = actions_context(env)
    repository = env.get("GITHUB_REPOSITORY") or None
    loop = ApplyLoop(actions, repository, policies_of(target), now, env, str(target))
    if not loop.writes:
        if loop.rules:
            loop.problem = "not a push job in GitHub Actions: no merged pull request, so no reviews"
        return loop
    if not actions.token:
        loop.problem = "GITHUB_TOKEN is not set: the merged pull request cannot be read"
        return loop
    github = GitHub(actions.api_url, actions.token)
    try:
        loop.pulls = merged_pulls(github, repository or "", actions.commit or "")
    except GitHubError as exc:
        loop.problem = f"cannot find the pull request of {actions.commit}: {exc.message}"
        return loop
    if not loop.pulls:
        loop.problem = f"no merged pull request explains commit {(actions.commit or '')[:7]}"
    return loop


def report(github: GitHub, loop: ApplyLoop, outcome: ApplyOutcome) -> list[str]:
    """The Applied section on each merged pull request's comment, the commit status, a
    deployment (with its status) per registry that had changes; what was done, line by line."""
    repository, sha = loop.repository or "", loop.actions.commit or ""
    run_url = loop.actions.run_url
    section = bodies.section(outcome, sha, run_url)
    done = _post_section(github, loop, section)
    state, description = bodies.status_description(outcome)
    done.append(post_status(github, loop, state, description))
    for r in outcome.registries:
        s = bodies.registry_state(r)
        if s.state == "no changes":
            continue
        deployment = github.post(
            f"/repos/{repository}/deployments",
            {
                "ref": sha,
                "environment": r.name,
                "description": f"mlflow-gitops apply: {s.state}"[:140],
                "auto_merge": False,
                # the apply's own status (and any other check) may still be pending: without
                # this GitHub refuses the deployment (409)
                "required_contexts": [],
                "task": "deploy",
            },
            f"create the deployment of registry {r.name}",
        )
        deployment_id = deployment.get("id") if isinstance(deployment, dict) else None
        if not isinstance(deployment_id, int):
            raise GitHubError(f"GitHub created no deployment for registry {r.name}", WRITE_HINT, 0)
        link = bodies.ui_link(r.uri, r.result.record) if r.result and r.result.record else None
        state_name = bodies.deployment_state(s.state)
        github.post(
            f"/repos/{repository}/deployments/{deployment_id}/statuses",
            {
                "state": state_name,
                "description": f"{s.applied} applied, {s.blocked} blocked, {s.failed} failed"[:140],
                **({"log_url": run_url} if run_url else {}),
                **({"environment_url": link} if link else {}),
            },
            f"set the deployment status of registry {r.name}",
        )
        done.append(f"deployment {r.name}: {state_name}")
    return done


def _post_section(github: GitHub, loop: ApplyLoop, section: str) -> list[str]:
    """The Applied section on each merged pull request's sticky comment (created if missing)."""
    from mlflow_gitops.github.body import COMMENT_LIMIT, file_key, is_ours, title
    from mlflow_gitops.render.markdown import MARKER

    repository, file = loop.repository or "", loop.file
    done = []
    for number in loop.pulls:
        comments = github.comments(repository, number)
        ours = next((c for c in comments if is_ours(c.body, file)), None)
        if ours is None:
            text = f"{MARKER}\n### {title(file)}\n\n{section}\n{file_key(file)}\n"
            made = github.create_comment(
                repository, number, _fit(text, section, file, COMMENT_LIMIT)
            )
            done.append(f"pull request #{number}: comment created: {made.url}")
        else:
            text = _fit(bodies.with_section(ours.body, section), section, file, COMMENT_LIMIT)
            made = github.update_comment(repository, ours.id, text)
            done.append(f"pull request #{number}: comment updated: {made.url}")
    return done


def post_status(github: GitHub, loop: ApplyLoop, state: str, description: str) -> str:
    """The merge commit's status mlflow-gitops/apply, linking the run."""
    repository, sha = loop.repository or "", loop.actions.commit or ""
    run_url = loop.actions.run_url
    github.post(
        f"/repos/{repository}/statuses/{sha}",
        {
            "state": state,
            "context": STATUS_CONTEXT,
            "description": description[:140],
            **({"target_url": run_url} if run_url else {}),
        },
        "set the commit status",
    )
    return f"commit {sha[:7]}: status {STATUS_CONTEXT} {state}"


def _fit(text: str, section: str, file: str, limit: int) -> str:
    """The comment within GitHub's limit: when the plan and the Applied section do not fit
    together, the section stays and the plan gives way to a note."""
    from mlflow_gitops.github.body import file_key, title
    from mlflow_gitops.render.markdown import MARKER

    if len(text) <= limit:
        return text
    note = (
        "> [!NOTE]\n> The plan is too long to keep beside the applied result: it is in the "
        "plan job's summary.\n"
    )
    return f"{MARKER}\n### {title(file)}\n\n{note}\n{section}\n{file_key(file)}\n"
