"""What became of each change of an apply: values the applier returns and the renderers show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlflow_gitops.plan.changes import Change, Plan
from mlflow_gitops.plan.tree import TreePlan

Status = Literal["applied", "failed", "not applied", "blocked"]


@dataclass(frozen=True)
class Step:
    """What became of one change, or of the tool's own work around the changes (annotating a
    model's versions, releasing the lock, finishing the audit record: a plain sentence).
    Renderers describe the change."""

    model: str
    what: Change | str
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class ApplyResult:
    """Every step, in plan order, with its outcome."""

    steps: tuple[Step, ...] = ()
    record: str | None = None  # the audit run of this apply
    experiment: str | None = None  # the audit experiment that holds it

    @property
    def ok(self) -> bool:
        """Nothing failed (blocked models are reported separately)."""
        return all(s.status in ("applied", "blocked") for s in self.steps)

    def count(self, status: Status) -> int:
        """How many steps ended with that status."""
        return sum(1 for s in self.steps if s.status == status)


@dataclass(frozen=True)
class RegistryResult:
    """What became of one registry's plan: None when it was empty, or not applied because an
    earlier registry failed (`skipped`)."""

    name: str
    uri: str
    result: ApplyResult | None
    skipped: bool = False


@dataclass(frozen=True)
class ApplyOutcome:
    """The plan that was applied, where, and the result (None: the plan was empty); over a
    tree, each registry's result in apply order."""

    plan: Plan
    uri: str
    result: ApplyResult | None
    registries: tuple[RegistryResult, ...] = ()
    tree: TreePlan | None = None

    @property
    def ok(self) -> bool:
        return all(r.result is None or r.result.ok for r in self.registries) and (
            self.result is None or self.result.ok
        )
