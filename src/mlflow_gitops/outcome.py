"""What became of each change of an apply: values the applier returns and the renderers show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["applied", "failed", "not applied", "blocked"]


@dataclass(frozen=True)
class Step:
    """What became of one change (or of the annotation of a model)."""

    model: str
    what: str
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class ApplyResult:
    """Every step, in plan order, with its outcome."""

    steps: tuple[Step, ...] = ()
    record: str | None = None  # the audit run of this apply

    @property
    def ok(self) -> bool:
        """Nothing failed (blocked models are reported separately)."""
        return all(s.status in ("applied", "blocked") for s in self.steps)

    def count(self, status: Status) -> int:
        """How many steps ended with that status."""
        return sum(1 for s in self.steps if s.status == status)
