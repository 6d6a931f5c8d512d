"""Every output for machines, as JSON with one schema_version: a plan (every change with before
and after), a tree's plan, a saved plan, an apply's result and a model's history."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from mlflow_gitops.history import Event
from mlflow_gitops.outcome import ApplyOutcome, ApplyResult
from mlflow_gitops.plan.changes import SCHEMA_VERSION, Plan
from mlflow_gitops.plan.saved import SAVED_PLAN_KIND
from mlflow_gitops.plan.tree import TreePlan
from mlflow_gitops.render.common import registry_status, step_text, summarize
from mlflow_gitops.secrets import redact
from mlflow_gitops.settings import registry_identity


def plan_document(plan: Plan, **meta: Any) -> dict[str, Any]:
    """The plan as a JSON-ready dict; `meta` adds top-level keys (tracking URI, file, time)."""
    data = plan.model_dump(mode="json")
    s = summarize(plan)
    data["summary"] = {
        "add": s.add,
        "change": s.change,
        "delete": s.delete,
        "total": s.total,
        "models": s.models,
        "blocked": s.blocked,
        "drift": s.drift,
    }
    return {**data, **meta}


def render_plan(plan: Plan, **meta: Any) -> str:
    """Stable, sorted-key JSON."""
    return json.dumps(plan_document(plan, **meta), indent=2, sort_keys=True) + "\n"


def render_saved(
    plan: Plan,
    *,
    tracking_uri: str,
    file: Path,
    now: datetime,
    name: str,
    registry_uri: str | None = None,
) -> str:
    """plan.json (plan/saved.py reads it back): the plan, a fingerprint of every model it read,
    the registry it was made against (the identity of its registry URI, never credentials; its
    URIs only when they carry none) and its name in the tree."""
    registry_uri = registry_uri or tracking_uri
    safe_uri = tracking_uri if redact(tracking_uri) == tracking_uri else None
    doc = plan_document(
        plan,
        kind=SAVED_PLAN_KIND,
        created_at=now.isoformat(timespec="seconds"),
        tracking_uri=safe_uri,
        file=str(file),
    )
    doc["registry"] = registry_identity(registry_uri)  # apply checks it
    doc["registry_name"] = name
    if registry_uri != tracking_uri and redact(registry_uri) == registry_uri:
        doc["registry_uri"] = registry_uri
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def result_document(result: ApplyResult) -> dict[str, Any]:
    """Each step with its status, and the audit run."""
    steps = [
        {"model": s.model, "change": step_text(s), "status": s.status, "detail": s.detail}
        for s in result.steps
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "ok": result.ok,
        "steps": steps,
        "audit_run": result.record,
    }


def render_result(result: ApplyResult) -> str:
    """Each step with its status."""
    return json.dumps(result_document(result), indent=2) + "\n"


def render_apply(outcome: ApplyOutcome) -> str:
    """An apply's result: the one registry's steps, or each registry's status and result in
    apply order ("" when a single registry had nothing to apply)."""
    if len(outcome.registries) <= 1:
        return render_result(outcome.result) if outcome.result else ""
    data = {
        "schema_version": SCHEMA_VERSION,
        "ok": outcome.ok,
        "registries": [
            {
                "registry": r.name,
                "status": registry_status(r),
                "result": result_document(r.result) if r.result else None,
            }
            for r in outcome.registries
        ],
    }
    return json.dumps(data, indent=2) + "\n"


def tree_document(tree: TreePlan, **meta: Any) -> dict[str, Any]:
    """A tree's plan: each registry's plan document with its name, identity and the file of
    each model; `partial` and what was selected."""
    registries = [
        {"registry": r.registry, "identity": r.identity, "files": r.files, **plan_document(r.plan)}
        for r in tree.registries
    ]
    total = {
        key: sum(r["summary"][key] for r in registries)
        for key in ("add", "change", "delete", "total", "models", "blocked", "drift")
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "mlflow-gitops-tree-plan",
        "partial": tree.partial,
        "selected": {
            "registries": list(tree.selected_registries),
            "models": list(tree.selected_models),
        },
        "registries": registries,
        "summary": total,
        **meta,
    }


def render_tree(tree: TreePlan, *, file: str) -> str:
    """Stable, sorted-key JSON of a tree's plan; a file without registries: (one registry is a
    tree of one) as a plain plan with its tracking URI."""
    if (single := tree.single) is not None:
        return render_plan(single.plan, tracking_uri=single.uri, file=file)
    return json.dumps(tree_document(tree, file=file), indent=2, sort_keys=True) + "\n"


def render_history(name: str, found: list[Event]) -> str:
    """The events of a model's history as objects, newest first."""
    data = {"schema_version": SCHEMA_VERSION, "model": name, "events": [asdict(e) for e in found]}
    return json.dumps(data, indent=2) + "\n"
