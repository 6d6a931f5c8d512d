"""What a rule sees: the change, the pull request, the plan and the time, as plain values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlflow_gitops.plan.changes import (
    Change,
    DeleteAlias,
    DeleteVersion,
    SetAlias,
    Target,
    TransitionStage,
)
from mlflow_gitops.plan.tree import TreePlan

TEAMS_TOKEN = "MLFLOW_GITOPS_TEAMS_TOKEN"  # reads team memberships (members: read)


@dataclass(frozen=True)
class Approval:
    """A reviewer whose latest review approves; `teams` None: memberships could not be read."""

    user: str
    teams: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PullFacts:
    """The pull request a plan or an apply is for, as GitHub's API told it. An apply that no
    pull request explains (a direct push) has `number` None and nothing else."""

    number: int | None = None
    author: str | None = None
    approvals: tuple[Approval, ...] = ()
    labels: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    label_setters: Mapping[str, str] = field(default_factory=dict)  # label -> who set it last
    teams_of: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # user -> team slugs
    teams_problem: str | None = None  # why memberships are unknown (names the missing token)
    problem: str | None = None  # why the pull request itself could not be read

    def value(self) -> dict[str, Any]:
        """`pr` as a rule sees it; an approval's `teams` is absent when it cannot be read, so a
        rule that needs it errors (and blocks) instead of reading an empty list."""
        approvals: list[dict[str, Any]] = []
        for a in self.approvals:
            entry: dict[str, Any] = {"user": a.user}
            if a.teams is not None:
                entry["teams"] = list(a.teams)
            approvals.append(entry)
        return {
            "number": self.number,
            "author": self.author,
            "approvals": approvals,
            "labels": list(self.labels),
            "files": list(self.files),
        }


def change_value(change: Change, registry: str, file: str) -> dict[str, Any]:
    """`change` as a rule sees it; a field the change has not is null."""
    target = getattr(change, "target", None)
    version = target.version if isinstance(target, Target) else None
    if isinstance(change, DeleteAlias):
        version = change.before
    from_stage = stage = alias = None
    match change:
        case TransitionStage():
            from_stage, stage = change.before, change.after
        case DeleteVersion():
            from_stage = change.stage
        case SetAlias() | DeleteAlias():
            alias = change.alias
        case _:
            pass
    return {
        "kind": change.kind,
        "registry": registry,
        "file": file or None,
        "model": change.model,
        "version": version,
        "from_stage": from_stage,
        "stage": stage,
        "alias": alias,
    }


def plan_value(tree: TreePlan) -> dict[str, Any]:
    """`plan` as a rule sees it: the changed models of every registry."""
    return {
        "models": [
            {"registry": r.registry, "name": model}
            for r in tree.registries
            for model in r.plan.models
        ]
    }
