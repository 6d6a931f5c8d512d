"""The saved plan (`plan --out`, `apply PLAN`): its format, which registry it belongs to, and
whether it is still fresh. Written by render/json.py's render_saved; read back here."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlflow_gitops.errors import GitopsError, StalePlanError
from mlflow_gitops.observed import RegistryState
from mlflow_gitops.plan.changes import Plan
from mlflow_gitops.settings import (
    Endpoint,
    NoTrackingUri,
    registry_identity,
    resolve_registry_uri,
    resolve_tracking_uri,
)
from mlflow_gitops.spec.model import DEFAULT_REGISTRY
from mlflow_gitops.spec.tree import LoadedTree, load_tree

SAVED_PLAN_KIND = "mlflow-gitops-plan"


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    tracking_uri: str | None
    file: str | None
    registry: str | None = None  # registry_identity() of the registry it was made against
    registry_name: str | None = None  # its name in the tree (None: an older mlflow-gitops)
    registry_uri: str | None = None  # where its models live, when that is not tracking_uri


def is_saved_plan(path: Path) -> bool:
    """A JSON file written by `plan --out`."""
    if path.suffix.lower() != ".json":
        return False
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("kind") == SAVED_PLAN_KIND)
    except (OSError, ValueError, AttributeError):
        return False


def load_plan(path: Path) -> SavedPlan:
    """Read plan.json back; refuses files that are not plans of this schema version."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GitopsError(
            f"cannot read plan {path}: {exc}", "run `mlflow-gitops plan --out`"
        ) from None
    meta = {
        k: data.pop(k, None)
        for k in (
            "kind",
            "created_at",
            "tracking_uri",
            "file",
            "summary",
            "registry",
            "registry_name",
            "registry_uri",
        )
    }
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise GitopsError(
            f"{path} is not a plan this version of mlflow-gitops can apply ({exc.error_count()} errors)",
            "run `mlflow-gitops plan --out` again",
        ) from None
    return SavedPlan(
        plan=plan,
        tracking_uri=meta["tracking_uri"],
        file=meta["file"],
        registry=meta["registry"],
        registry_name=meta["registry_name"],
        registry_uri=meta["registry_uri"],
    )


def saved_tree(saved: SavedPlan) -> LoadedTree | None:
    """The tree of the file a saved plan was made from (None: the file is gone, or the plan
    names none); a plan made against a named registry needs it for that registry's credentials."""
    if saved.file and Path(saved.file).exists():
        return load_tree(saved.file)
    if saved.registry_name not in (None, DEFAULT_REGISTRY):
        raise GitopsError(
            f"this plan was made against registry {saved.registry_name} of {saved.file}, which "
            "is gone: its URI and credentials are declared there; nothing was applied",
            "apply it from the repository it was planned in, or run `mlflow-gitops plan --out` "
            "again",
        )
    return None


def saved_plan_endpoint(saved: SavedPlan, flag: str | None) -> Endpoint:
    """Where to apply a saved plan: the tracking URI from --tracking-uri, MLFLOW_TRACKING_URI,
    or the URI the plan stored; the registry URI from MLFLOW_REGISTRY_URI, the one the plan
    stored, or MLflow's default for the tracking URI; never a default tracking URI. Refused
    when the registry URI points at another registry than the plan's."""
    if not saved.registry:
        raise GitopsError(
            "this plan does not record which registry it was made against (an older "
            "mlflow-gitops wrote it); nothing was applied",
            "run `mlflow-gitops plan --out` again",
        )
    try:
        uri = resolve_tracking_uri(flag, saved.tracking_uri, None, local_default=False)
    except NoTrackingUri:
        raise GitopsError(
            f"this plan was made against {saved.registry}, whose URI carried credentials and was "
            "not saved, and no tracking URI was given; nothing was applied",
            f"apply it with --tracking-uri {saved.registry} (or MLFLOW_TRACKING_URI), the "
            "credentials in MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or "
            "MLFLOW_TRACKING_TOKEN",
        ) from None
    where = Endpoint(uri, resolve_registry_uri(saved.registry_uri, uri, None, flag=flag))
    same_registry(saved.registry, where.registry_uri)
    return where


def saved_plan_uri(saved: SavedPlan, flag: str | None) -> str:
    """The registry URI a saved plan applies to (saved_plan_endpoint)."""
    return saved_plan_endpoint(saved, flag).registry_uri


def same_registry(identity: str, uri: str) -> None:
    """Refuse a saved plan made against `identity` when `uri` points at another registry."""
    given = registry_identity(uri)
    if given != identity:
        raise StalePlanError(
            f"this plan was made against {identity}, but the URIs given point at "
            f"{given}; nothing was applied",
            "apply it to the registry it was made against, or run `mlflow-gitops plan --out` "
            "against this one",
        )


def check_unchanged(saved: SavedPlan, observed: RegistryState) -> None:
    """Refuse a plan when any model it covers changed since it was made (stale plan)."""
    changed = sorted(m for m, d in saved.plan.observed.items() if observed.digest(m) != d)
    if changed:
        raise StalePlanError(
            f"the registry changed since this plan was made (models: {', '.join(changed)})",
            "run `mlflow-gitops plan --out` again and review the new plan; nothing was applied",
        )


def gated_file(saved: SavedPlan) -> str:
    """The registry file of a plan with gate results, whose gates run again; refused when gone."""
    if not saved.file or not Path(saved.file).exists():
        raise StalePlanError(
            "this plan has gate results but its registry file is gone",
            "run plan --out again from the repository",
        )
    return saved.file


def check_verdicts(saved: Plan, again: Plan) -> None:
    """Refuse a plan whose gates, run again, no longer give the recorded verdicts."""
    if _verdicts(again) != _verdicts(saved):
        raise StalePlanError(
            "gate inputs changed since this plan was made (data, gate spec or baseline)",
            "run `mlflow-gitops plan --out` again; nothing was applied",
        )


def only(plan: Plan, models: Collection[str]) -> Plan:
    """The part of a plan that concerns these models."""
    return plan.model_copy(
        update={
            "changes": tuple(c for c in plan.changes if c.model in models),
            "blocked": {k: v for k, v in plan.blocked.items() if k in models},
            "unmanaged": {k: v for k, v in plan.unmanaged.items() if k in models},
            "observed": {k: v for k, v in plan.observed.items() if k in models},
        }
    )


def _verdicts(plan: Plan) -> list[tuple[str, ...]]:
    return sorted((g.model, g.target, g.version, g.gate, g.verdict, g.inputs) for g in plan.gates)
