"""The `comment` use case: plan like `plan` (never against the local default registry), turn what
a reviewer should read into the comment (an invalid file, a registry that cannot be read), add
the Policies section (per change, the rules met and what is lacking) when the file has rules,
and publish it: to the job summary first, then as the pull request's one comment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mlflow_gitops.errors import GitopsError, RegistryError, SpecError
from mlflow_gitops.github import body as bodies
from mlflow_gitops.github.context import Actions
from mlflow_gitops.github.loop import with_policies
from mlflow_gitops.github.publish import (
    FORK_HINT,
    NO_URI_HINT,
    Outcome,
    Published,
    publish,
    tree_outcome,
)
from mlflow_gitops.reconcile.plan import PlanRequest, ignore, plan_request
from mlflow_gitops.settings import NoTrackingUri


@dataclass(frozen=True)
class CommentRequest:
    """What `comment` was given: the file, the registry, the Actions context, the clock, the
    part of the tree, and a file to write the full comment to."""

    file: Path
    tracking_uri: str | None
    actions: Actions
    now: datetime
    registries: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    out: Path | None = None


@dataclass(frozen=True)
class Commented:
    """The plan (or the error) and its body, and where the body went."""

    outcome: Outcome
    published: Published


def comment_request(
    request: CommentRequest, on_body: Callable[[Outcome], None] = ignore
) -> Commented:
    """Plan, then publish the body; `on_body` is told it first, so it is shown even when GitHub
    cannot be reached."""
    outcome = plan_for_comment(
        request.file,
        request.tracking_uri,
        request.actions,
        request.now,
        registries=request.registries,
        models=request.models,
    )
    outcome = with_policies(outcome, request.file, request.actions, request.now)  # per change
    on_body(outcome)
    return Commented(outcome, publish(outcome, request.file, request.actions, request.out))


def plan_for_comment(
    file: Path,
    tracking_uri: str | None,
    actions: Actions,
    now: datetime,
    *,
    registries: tuple[str, ...] = (),
    models: tuple[str, ...] = (),
) -> Outcome:
    """Load, plan and gate like `plan`; failures become a comment body instead of an exception.

    Never plans against the embedded default registry: in CI a missing secret would otherwise
    plan against an empty local database and show every model as new."""
    name = str(file)
    request = PlanRequest(
        file, tracking_uri, now, local_default=False, registries=registries, models=models
    )
    try:
        outcome = plan_request(request)
    except SpecError as exc:  # the file, or a run: that does not exist in the tracking server
        return Outcome(bodies.invalid(name, exc.issues), error=exc)
    except NoTrackingUri as exc:
        fork = actions.pull_request is not None and actions.pull_request.from_fork
        error = RegistryError(
            exc.message + (" (pull request from a fork: no secrets)" if fork else ""),
            FORK_HINT if fork else NO_URI_HINT,
        )
        return Outcome(bodies.failed(name, error), error=error)
    except GitopsError as exc:
        return Outcome(bodies.failed(name, exc), error=exc)
    return tree_outcome(outcome.tree, file, outcome.plan)
