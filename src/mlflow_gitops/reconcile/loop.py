"""The `apply` use case in the pull-request loop: find the merged pull request of the commit,
apply with its policies judged (unmet rules block models before anything is shown or written),
then tell GitHub what happened: the Applied section on the pull request, the commit status, a
deployment per registry. An apply refused before its first change says so there too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.github import loop as pull_loop
from mlflow_gitops.outcome import ApplyOutcome
from mlflow_gitops.reconcile.apply import ApplyRequest, apply_request
from mlflow_gitops.reconcile.plan import PlanOutcome, ignore


@dataclass(frozen=True)
class Reported:
    """The apply's outcome, and whether GitHub was told it (True when there was nothing to
    tell: outside a push job in GitHub Actions)."""

    outcome: ApplyOutcome
    told: bool


def apply_and_report(
    request: ApplyRequest,
    progress: Callable[[str], None] = ignore,
    on_plan: Callable[[PlanOutcome], None] = ignore,
    on_result: Callable[[ApplyOutcome], None] = ignore,
    say: Callable[[str], None] = ignore,
) -> Reported:
    """`apply_request` with the merged pull request's part: `request.pr` defaults to it, its
    rules judge the plan; `on_result` is told the outcome before GitHub is, and `say` each
    line of what was written to GitHub (or why not)."""
    loop = pull_loop.start(request.target, request.clock)
    pr = request.pr if request.pr is not None else loop.pr
    request = replace(request, pr=pr, judge=loop.judge)
    try:
        outcome = apply_request(request, progress, on_plan)
    except GitopsError as exc:  # refused before any change: the pull request says so too
        loop.refused(exc, say)
        raise
    on_result(outcome)
    return Reported(outcome, loop.finish(outcome, say))
