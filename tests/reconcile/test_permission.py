"""Whether a user may apply a plan: a pure function of the plan and of the permissions the
registry said the user holds (tables, no registry)."""

from __future__ import annotations

import pytest

from mlflow_gitops.errors import DENIED
from mlflow_gitops.permissions import Permission
from mlflow_gitops.plan.changes import (
    Change,
    CreateModel,
    CreateWebhook,
    DeleteAlias,
    Plan,
    SetAlias,
    SetModelTag,
    Target,
    WebhookFields,
)
from mlflow_gitops.reconcile.permission import permission_asks, refusal

TAG = SetModelTag(model="m", key="team", before=None, after="search")
UNALIAS = DeleteAlias(model="m", alias="champion", before=2)
ALIAS = SetAlias(model="m", alias="champion", before=None, target=Target(version=2))
CREATE = CreateModel(model="new")
HOOK = CreateWebhook(
    name="drift-relay",
    after=WebhookFields(url="https://relay.example.com/", events=("model_version.created",)),
)
USER = "user 'alice'"


def plan_of(*changes: Change, blocked: tuple[str, ...] = ()) -> Plan:
    return Plan(changes=changes, blocked=dict.fromkeys(blocked, ("a gate failed",)))


@pytest.mark.parametrize(
    ("plan", "asks"),
    [
        (plan_of(TAG), [("m", "EDIT")]),
        (plan_of(TAG, UNALIAS), [("m", "EDIT"), ("m", "MANAGE")]),
        (plan_of(CREATE, TAG), [("m", "EDIT"), ("new", "READ")]),
        (plan_of(TAG, blocked=("m",)), []),
        (plan_of(HOOK, TAG), [("m", "EDIT")]),  # webhooks: no model's (an admin's, read at plan)
        (plan_of(), []),
    ],
)
def test_what_the_registry_is_asked(plan: Plan, asks: list[tuple[str, Permission]]) -> None:
    assert sorted(permission_asks(plan)) == sorted(asks)


@pytest.mark.parametrize(
    ("plan", "held", "may_record", "missing"),
    [
        (plan_of(TAG), {("m", "EDIT"): True}, True, []),
        (plan_of(TAG), {("m", "EDIT"): False}, True, ["m: set model tag team=search: needs EDIT"]),
        (
            plan_of(ALIAS, UNALIAS),
            {("m", "EDIT"): True, ("m", "MANAGE"): False},
            True,
            ["m: delete alias champion: needs MANAGE"],
        ),
        (
            plan_of(ALIAS, UNALIAS),
            {("m", "EDIT"): False, ("m", "MANAGE"): True},
            True,
            ["m: alias champion -> v2: needs EDIT", "m: delete alias champion: needs MANAGE"],
        ),
        (
            plan_of(CREATE),
            {("new", "READ"): False},
            True,
            ["new: exists but this user may not read it (READ)"],
        ),
        (plan_of(CREATE), {("new", "READ"): True}, True, []),
        (plan_of(TAG, blocked=("m",)), {}, True, []),
        (plan_of(HOOK), {}, True, []),
        (
            plan_of(TAG),
            {("m", "EDIT"): True},
            False,
            ["experiment mlflow-gitops-audit (the audit record of every apply)"],
        ),
    ],
)
def test_refusal_names_each_model_and_the_permission_it_lacks(
    plan: Plan,
    held: dict[tuple[str, Permission], bool],
    may_record: bool,
    missing: list[str],
) -> None:
    refused = refusal(plan, held, may_record, USER)
    if not missing:
        assert refused is None
        return
    assert refused is not None
    assert refused.message.startswith(f"{DENIED}: {USER} lacks permissions")
    assert "nothing was changed (not even the apply lock)" in refused.message
    for line in missing:
        assert line in refused.message
    assert len(refused.message.splitlines()) == 1 + len(missing)
