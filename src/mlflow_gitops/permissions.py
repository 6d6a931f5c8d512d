"""Which MLflow permission each registry operation needs on its registered model.

Taken from MLflow's basic-auth validators (mlflow/server/auth/__init__.py), the same on 2.22 and
3.x: reading needs READ; updating a model or a version (tags, descriptions, stages, aliases,
registering a version, deleting a *model* tag) needs EDIT; deleting an alias, a version, a
*version* tag or a model needs MANAGE. Creating a model needs no permission on it (the creator
is granted MANAGE). Pure: no mlflow here."""

from __future__ import annotations

import os
from typing import Literal, assert_never

from mlflow_gitops.plan.changes import (
    Change,
    CopyVersion,
    CreateModel,
    CreateWebhook,
    DeleteAlias,
    DeleteModelTag,
    DeleteVersion,
    DeleteVersionTag,
    DeleteWebhook,
    RegisterVersion,
    RestoreHistory,
    SetAlias,
    SetModelDescription,
    SetModelTag,
    SetVersionDescription,
    SetVersionTag,
    TransitionStage,
    UpdateWebhook,
)

Permission = Literal["READ", "EDIT", "MANAGE"]
# MLflow's levels, weakest first (USE: MLflow 3, between READ and EDIT; DENY beats everything)
RANK: dict[str, int] = {
    "DENY": -1,
    "NO_PERMISSIONS": 0,
    "READ": 1,
    "USE": 2,
    "EDIT": 3,
    "MANAGE": 4,
}

# the adapter's operation names (RegistryPort writes) and what each needs
OPERATIONS: dict[str, Permission] = {
    "read": "READ",
    "register version": "EDIT",
    "set description": "EDIT",
    "set tag": "EDIT",
    "delete model tag": "EDIT",
    "transition stage": "EDIT",
    "set alias": "EDIT",
    "delete version tag": "MANAGE",
    "delete alias": "MANAGE",
    "delete version": "MANAGE",
    "delete model": "MANAGE",
}

WHAT_NEEDS = (
    "READ reads a model (plan); EDIT sets tags, descriptions, stages and aliases and registers "
    "versions; MANAGE also deletes aliases, versions and version tags"
)


def needed(change: Change) -> Permission | None:
    """The permission a change needs on its registered model; None for creating the model
    and for webhooks (no model's)."""
    match change:
        case CreateModel():
            return None
        case DeleteAlias() | DeleteVersion() | DeleteVersionTag():
            return "MANAGE"
        case (
            RegisterVersion()
            | CopyVersion()
            | SetModelDescription()
            | SetModelTag()
            | DeleteModelTag()
            | SetVersionDescription()
            | RestoreHistory()
            | SetVersionTag()
            | TransitionStage()
            | SetAlias()
        ):
            return "EDIT"
        case CreateWebhook() | UpdateWebhook() | DeleteWebhook():
            # not a model permission: an MLflow admin's (basic-auth), which reading the
            # webhooks at plan time already needed
            return None
        case _:
            assert_never(change)


def strongest(permissions: list[Permission]) -> Permission:
    """The permission that covers all of these."""
    return max(permissions, key=RANK.__getitem__)


def holds(level: str, wanted: Permission) -> bool:
    """Whether a user with MLflow permission `level` may do what `wanted` allows."""
    return RANK.get(level.upper(), -1) >= RANK[wanted]


def current_user() -> str:
    """The MLflow user the tool acts as (not a secret), or a description when none is set."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if user:
        return f"user '{user}'"
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return "the user of MLFLOW_TRACKING_TOKEN"
    return "this client (no MLFLOW_TRACKING_USERNAME set)"
