"""Renderers are pure: text symbols, Markdown that user text cannot break, JSON with a version."""

from __future__ import annotations

import json
import typing

import pytest

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
    Plan,
    RegisterVersion,
    RestoreHistory,
    SetAlias,
    SetModelDescription,
    SetModelTag,
    SetVersionDescription,
    SetVersionTag,
    Target,
    TransitionStage,
    UpdateWebhook,
    WebhookFields,
)
from mlflow_gitops.render import json as render_json
from mlflow_gitops.render import markdown, text
from mlflow_gitops.render.common import describe

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


def test_reused_scores_show_as_such_in_text_json_and_markdown() -> None:
    from mlflow_gitops.plan.gates import Check, GateResult, Reused

    reused = Reused(
        side="baseline",
        version=2,
        scored_at="2026-11-27T12:00:00+00:00",
        data="0123456789ab",
        hook="ba9876543210",
        rows=80_372,
    )
    gate = GateResult(
        model="m",
        target="Production",
        version="v4",
        gate="evaluate",
        verdict="pass",
        checks=(Check(name="rmse", candidate=6.5, baseline=6.6, bound="<= baseline"),),
        baseline_version=2,
        reused=(reused,),
    )
    planned = PLAN.model_copy(update={"gates": (gate,)})
    said = (
        "baseline v2 scores reused: computed 2026-11-27T12:00:00+00:00 on data 0123456789ab, "
        "hook ba9876543210 (80,372 rows); not loaded or scored again"
    )
    assert f"      {said}" in text.render_plan(planned, color=False).splitlines()
    assert f"- v4 → Production: {said}" in markdown.render_plan(planned).splitlines()
    doc = json.loads(render_json.render_plan(planned))
    assert doc["gates"][0]["reused"] == [reused.model_dump(mode="json")]
    unused = PLAN.model_copy(update={"gates": (gate.model_copy(update={"reused": ()}),)})
    assert "reused" not in text.render_plan(unused, color=False) + markdown.render_plan(unused)


HOOK = WebhookFields(url="https://relay.example/webhook", events=("model_version.created",))
V2, NEW = Target(version=2), Target(entry="run " + "3f2a" * 8 + "/model")
ONE_LINE = [
    (CreateModel(model="m"), "create model"),
    (RegisterVersion(model="m", entry="e", source="s3://b/m"), "register version from s3://b/m"),
    (
        CopyVersion(
            model="m",
            entry="copy_from dev:m/3",
            source_registry="dev",
            source_model="m",
            source_version=3,
            registry="prod",
        ),
        "copy dev:m/3 -> prod",
    ),
    (SetModelDescription(model="m", before=None, after="text"), "set model description"),
    (SetModelTag(model="m", key="team", before="a", after="b"), "set model tag team=b"),
    (DeleteModelTag(model="m", key="team", before="a"), "delete model tag team"),
    (SetVersionDescription(model="m", target=V2, before="", after="x"), "set v2 description"),
    (
        RestoreHistory(model="m", target=V2, before="", after="<!--\n- a"),
        "restore v2 history block",
    ),
    (SetVersionTag(model="m", target=V2, key="k", before=None, after="v"), "set v2 tag k=v"),
    (DeleteVersionTag(model="m", target=V2, key="k", before="v"), "delete v2 tag k"),
    (TransitionStage(model="m", target=V2, before="None", after="Staging"), "v2 None -> Staging"),
    (
        TransitionStage(model="m", target=NEW, before="None", after="Staging"),
        "new version (run 3f2a3f2a/model) None -> Staging",
    ),
    (SetAlias(model="m", alias="champion", before=1, target=V2), "alias champion -> v2"),
    (DeleteAlias(model="m", alias="old", before=1), "delete alias old"),
    (DeleteVersion(model="m", target=V2, stage="Archived"), "delete v2"),
    (
        CreateWebhook(name="relay", after=HOOK, secret_env="RELAY_SECRET"),
        "create webhook relay",
    ),
    (
        UpdateWebhook(
            name="relay",
            webhook_id="w1",
            before=WebhookFields(status="ACTIVE"),
            after=WebhookFields(status="DISABLED"),
        ),
        "update webhook relay: status DISABLED",
    ),
    (DeleteWebhook(name="relay", webhook_id="w1", before=HOOK), "delete webhook relay"),
]


@pytest.mark.parametrize(("change", "line"), ONE_LINE)
def test_each_kind_of_change_has_one_plain_line(change: Change, line: str) -> None:
    """The line apply's results, its audit record and the permission messages show."""
    assert describe(change) == line


def test_the_one_line_table_covers_every_kind_of_change() -> None:
    kinds = {type(c) for c, _ in ONE_LINE}
    assert kinds == set(typing.get_args(typing.get_args(Change)[0]))
