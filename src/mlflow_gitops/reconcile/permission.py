"""Whether this user may apply a plan: a pure function of the plan and of what the registry said
the user may do. Every change is annotated (tags, description), so any change needs EDIT;
MLflow grants MANAGE on a model to the user who creates it. Webhooks are no model's: changing
them needs an MLflow admin, which reading them at plan time already needed."""

from __future__ import annotations

from collections.abc import Mapping

from mlflow_gitops.errors import DENIED, PermissionDenied
from mlflow_gitops.permissions import WHAT_NEEDS, Permission, needed
from mlflow_gitops.plan.changes import CreateModel, Plan
from mlflow_gitops.record import AUDIT_EXPERIMENT
from mlflow_gitops.render.common import describe
from mlflow_gitops.spec.webhooks import WEBHOOKS

Held = Mapping[tuple[str, Permission], bool]


def permission_asks(plan: Plan) -> list[tuple[str, Permission]]:
    """What to ask the registry: per model with changes, READ when the plan creates it (it may
    exist unreadable), else EDIT, and MANAGE when a change needs it."""
    asks: list[tuple[str, Permission]] = []
    for model in plan.models:
        changes = [] if model in plan.blocked else plan.changes_for(model)
        if not changes or model == WEBHOOKS:  # webhooks: reading them at plan time needed admin
            continue
        if any(isinstance(c, CreateModel) for c in changes):
            asks.append((model, "READ"))
            continue
        asks.append((model, "EDIT"))
        if any(needed(c) == "MANAGE" for c in changes):
            asks.append((model, "MANAGE"))
    return asks


def refusal(
    plan: Plan, held: Held, may_record: bool, user: str, *, experiment: str = AUDIT_EXPERIMENT
) -> PermissionDenied | None:
    """The error that refuses the whole apply, naming each model, its operations and the
    permission it lacks; None when `held` (the answers to permission_asks) and `may_record`
    (the audit experiment) allow every change."""
    missing: list[str] = []
    for model in plan.models:
        changes = [] if model in plan.blocked else plan.changes_for(model)
        if not changes or model == WEBHOOKS:  # webhooks: reading them at plan time needed admin
            continue
        if any(isinstance(c, CreateModel) for c in changes):
            if not held.get((model, "READ"), False):
                missing.append(
                    f"{model}: exists but this user may not read it (READ), so it looked "
                    "absent and the plan would create it"
                )
            continue
        edits = [describe(c) for c in changes if needed(c) == "EDIT"] or ["annotate versions"]
        manages = [describe(c) for c in changes if needed(c) == "MANAGE"]
        can_edit = held.get((model, "EDIT"), False)
        if not can_edit:
            missing.append(_lacking(model, edits, "EDIT"))
        if manages and (not can_edit or not held.get((model, "MANAGE"), False)):
            missing.append(_lacking(model, manages, "MANAGE"))
    if not may_record:
        missing.append(
            f"experiment {experiment} (the audit record of every apply): logging this "
            "apply's run in it needs EDIT"
        )
    if not missing:
        return None
    return PermissionDenied(
        f"{DENIED}: {user} lacks permissions this plan needs; nothing was changed (not "
        "even the apply lock):\n" + "".join(f"    {line}\n" for line in missing).rstrip(),
        f"ask an MLflow admin to grant them, or apply as a user who holds them ({WHAT_NEEDS})",
    )


def _lacking(model: str, operations: list[str], permission: str) -> str:
    more = f" and {len(operations) - 3} more" if len(operations) > 3 else ""
    return f"{model}: {'; '.join(operations[:3])}{more}: needs {permission}"
