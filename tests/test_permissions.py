"""Which MLflow permission each planned change needs (from MLflow's basic-auth validators)."""

from __future__ import annotations

import pytest

from mlflow_gitops.errors import DENIED
from mlflow_gitops.outcome import ApplyResult, Step
from mlflow_gitops.permissions import holds, needed
from mlflow_gitops.plan.changes import (
    Change,
    CreateModel,
    DeleteAlias,
    DeleteModelTag,
    DeleteVersion,
    DeleteVersionTag,
    SetAlias,
    SetModelTag,
    Target,
    TransitionStage,
)
from mlflow_gitops.render.text import render_result

V2 = Target(version=2)


@pytest.mark.parametrize(
    ("change", "permission"),
    [
        (CreateModel(model="m"), None),
        (SetModelTag(model="m", key="k", before=None, after="v"), "EDIT"),
        (DeleteModelTag(model="m", key="k", before="v"), "EDIT"),
        (TransitionStage(model="m", target=V2, before="None", after="Staging"), "EDIT"),
        (SetAlias(model="m", alias="a", before=None, target=V2), "EDIT"),
        (DeleteAlias(model="m", alias="a", before=2), "MANAGE"),
        (DeleteVersion(model="m", target=V2, stage="None"), "MANAGE"),
        (DeleteVersionTag(model="m", target=V2, key="k", before="v"), "MANAGE"),
    ],
)
def test_needed_permission(change: Change, permission: str | None) -> None:
    assert needed(change) == permission


@pytest.mark.parametrize(
    ("level", "wanted", "expected"),
    [
        ("READ", "READ", True),
        ("READ", "EDIT", False),
        ("USE", "EDIT", False),
        ("EDIT", "EDIT", True),
        ("EDIT", "MANAGE", False),
        ("MANAGE", "MANAGE", True),
        ("NO_PERMISSIONS", "READ", False),
        ("DENY", "READ", False),
    ],
)
def test_holds(level: str, wanted: str, expected: bool) -> None:
    assert holds(level, wanted) is expected  # type: ignore[arg-type]


def test_a_refused_change_does_not_say_run_apply_again() -> None:
    denied = Step("m", "set model tag team=x", "failed", f"{DENIED}: set tag needs EDIT on ...")
    failed = Step("m", "set model tag team=x", "failed", "cannot set tag at http://h: boom")
    text = render_result(ApplyResult(steps=(denied,)))
    assert "Run apply again" not in text
    assert "applying again as the same user will not help" in text
    assert "Run apply again to finish" in render_result(ApplyResult(steps=(failed,)))
