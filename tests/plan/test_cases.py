"""Planner cases as data: each file in cases/ holds desired, observed and the expected plan as
values (the changes as their model_dump without default fields, the blocked models with their
reasons, the unmanaged versions), so that how a plan is rendered never rewrites a planner case."""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlflow_gitops.errors import SpecError
from mlflow_gitops.observed import RegistryState
from mlflow_gitops.plan.changes import Plan
from mlflow_gitops.plan.planner import plan
from tests.fakes import observed_from_data, webhooks_from_data
from tests.helpers import load_text

NOW = datetime(2026, 11, 27, tzinfo=UTC)  # the one clock of these plans

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))
FLOW_WIDTH = 100  # a change that fits on a line is written as one flow mapping


def expected_of(result: Plan) -> dict[str, Any]:
    """The part of a plan a case pins: its changes in order, blocked models, unmanaged versions."""
    expected: dict[str, Any] = {
        "changes": [
            {"kind": c.kind, **c.model_dump(mode="json", exclude_defaults=True)}
            for c in result.changes
        ]
    }
    if result.blocked:
        expected["blocked"] = {model: list(why) for model, why in result.blocked.items()}
    if result.unmanaged:
        expected["unmanaged"] = {model: list(v) for model, v in result.unmanaged.items()}
    return expected


def flow(value: object) -> str:
    """A value as YAML on one line (a scalar plain or quoted, a list or mapping in flow style)."""
    text = yaml.safe_dump(
        [value], default_flow_style=True, sort_keys=False, allow_unicode=True, width=10**6
    )
    return text.strip()[1:-1]


def dump_expected(expected: dict[str, Any]) -> str:
    """`expected:` as a case file writes it: a change on one line where it fits, else one line
    per field; a blocked model's reasons one per line."""
    lines = ["expected:"]
    changes = expected.get("changes", [])
    lines.append("  changes:" if changes else "  changes: []")
    for change in changes:
        if len(flow(change)) + 6 <= FLOW_WIDTH:
            lines.append(f"    - {flow(change)}")
            continue
        fields = [f"{key}: {flow(value)}" for key, value in change.items()]
        lines += [f"    - {fields[0]}", *(f"      {field}" for field in fields[1:])]
    if "blocked" in expected:
        lines.append("  blocked:")
        for model, reasons in expected["blocked"].items():
            lines += [f"    {flow(model)}:", *(f"      - {flow(why)}" for why in reasons)]
    if "unmanaged" in expected:
        lines.append("  unmanaged:")
        lines += [f"    {flow(m)}: {flow(v)}" for m, v in expected["unmanaged"].items()]
    return "\n".join(lines) + "\n"


def difference(expected: dict[str, Any], planned: dict[str, Any], name: str) -> str:
    """A unified diff of the two, as case files write them."""
    return "\n".join(
        difflib.unified_diff(
            dump_expected(expected).splitlines(),
            dump_expected(planned).splitlines(),
            f"{name} (expected)",
            "planned",
            lineterm="",
        )
    )


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_case(case: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(case.read_text(encoding="utf-8"))
    desired = load_text(tmp_path, data["desired"])
    observed = RegistryState(
        models=observed_from_data(data.get("observed") or {}),
        webhooks=webhooks_from_data(data.get("observed_webhooks")),
    )
    if "error" in data:
        with pytest.raises(SpecError) as err:
            plan(desired, observed, NOW)
        assert data["error"] in err.value.render()
        return
    now = datetime.fromisoformat(data["now"]) if "now" in data else NOW
    result = plan(desired, observed, now)
    planned = expected_of(result)
    if planned != data["expected"]:
        diff = difference(data["expected"], planned, case.name)
        pytest.fail(f"the plan differs from {case.name}:\n{diff}", pytrace=False)
    # the plan is deterministic: the same inputs give the same plan
    assert plan(desired, observed, now) == result


def test_a_difference_is_shown_as_a_diff_of_the_changes() -> None:
    """What a failing case prints: the changed field, on the line of its change."""
    expected = {
        "changes": [
            {"kind": "set_model_tag", "model": "m", "key": "team", "before": None, "after": "a"}
        ]
    }
    planned = {
        "changes": [
            {"kind": "set_model_tag", "model": "m", "key": "team", "before": None, "after": "b"}
        ]
    }
    diff = difference(expected, planned, "case.yaml").splitlines()
    assert diff[:2] == ["--- case.yaml (expected)", "+++ planned"]
    assert "-    - {kind: set_model_tag, model: m, key: team, before: null, after: a}" in diff
    assert "+    - {kind: set_model_tag, model: m, key: team, before: null, after: b}" in diff
