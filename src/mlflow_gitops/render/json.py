"""The plan as JSON for machines: schema_version, every change with before and after."""

from __future__ import annotations

import json
from typing import Any

from mlflow_gitops.outcome import ApplyResult
from mlflow_gitops.plan.changes import PLAN_SCHEMA_VERSION, Plan
from mlflow_gitops.plan.tree import TreePlan
from mlflow_gitops.render.common import summarize


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


def render_result(result: ApplyResult) -> str:
    """Each step with its status."""
    steps = [
        {"model": s.model, "change": s.what, "status": s.status, "detail": s.detail}
        for s in result.steps
    ]
    data = {"schema_version": 1, "ok": result.ok, "steps": steps, "audit_run": result.record}
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
        "schema_version": PLAN_SCHEMA_VERSION,
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


def render_tree(tree: TreePlan, **meta: Any) -> str:
    """Stable, sorted-key JSON of a tree's plan."""
    return json.dumps(tree_document(tree, **meta), indent=2, sort_keys=True) + "\n"
