"""Renderers are pure: text symbols, Markdown that user text cannot break, JSON with a version."""

from __future__ import annotations

import json

from mlflow_gitops.plan.changes import (
    CreateModel,
    DeleteAlias,
    Plan,
    SetModelDescription,
    SetModelTag,
    SetVersionTag,
    Target,
    TransitionStage,
)
from mlflow_gitops.render import json as render_json
from mlflow_gitops.render import markdown, text

PLAN = Plan(
    changes=(
        CreateModel(model="m"),
        SetModelDescription(
            model="m", before=None, after="a <script>alert(1)</script> | `x` [l](http://e)"
        ),
        SetModelTag(model="m", key="team", before="a", after="b"),
        SetVersionTag(
            model="m", target=Target(version=2), key="x", before=None, after="**bold** @team"
        ),
        TransitionStage(
            model="m", target=Target(version=2), before="Staging", after="Production", drift=True
        ),
        DeleteAlias(model="m", alias="old", before=1),
    ),
    blocked={"m": ("policy max_per_stage: too many",)},
    unmanaged={"m": (1,)},
    observed={"m": "abc"},
)


def test_text_symbols_and_summary() -> None:
    out = text.render_plan(PLAN)
    assert "  + registered model: m" in out
    assert '  ~ tag team: "a" -> "b"' in out
    assert "  - alias old: (was v1)" in out
    assert "[drift: changed in the registry by hand]" in out
    assert "! blocked: policy max_per_stage" in out
    assert out.strip().endswith(
        "Plan: 6 to change (3 to add, 2 to change, 1 to delete) in 1 model. 1 drifted from the file. 1 model blocked."
    )
    assert "\033[" not in out
    assert "\033[32m+" in text.render_plan(PLAN, color=True)


def test_markdown_escapes_user_text() -> None:
    out = markdown.render_plan(PLAN)
    assert out.startswith(markdown.MARKER)
    assert "<script>" not in out
    assert "&lt;script&gt;" in out
    assert "**bold**" not in out
    assert "@team" not in out
    for line in out.splitlines():
        if line.startswith("| `"):
            assert line.count(" | ") == 4, line  # a `|` in user text never adds a column
    assert "[!CAUTION]" in out
    assert "drift" in out


def test_json_has_schema_version_and_round_trips() -> None:
    doc = json.loads(render_json.render_plan(PLAN))
    assert doc["schema_version"] == 1
    assert doc["summary"]["total"] == 6
    assert doc["changes"][4] == {
        "kind": "transition_stage",
        "model": "m",
        "target": {"version": 2, "entry": None},
        "before": "Staging",
        "after": "Production",
        "reason": "declared",
        "replaced_by": [],
        "drift": True,
        "archive_others": False,
    }
    doc.pop("summary")
    assert Plan.model_validate(doc) == PLAN


def test_gates_form_one_markdown_table() -> None:
    from mlflow_gitops.plan.gates import Check, GateResult

    gates = tuple(
        GateResult(
            model="m",
            target="Production",
            version="v2",
            gate=kind,
            verdict="pass",
            checks=(Check(name=kind, candidate=1.0, bound="<= 2"),),
        )
        for kind in ("metric", "max_size_mb", "require_signature")
    )
    out = markdown.render_plan(PLAN.model_copy(update={"gates": gates}))
    table = out[out.index("| gate |") :].split("\n\n")[0].splitlines()
    assert len(table) == 2 + 3  # header, rule, one row per check: no blank line splits it
