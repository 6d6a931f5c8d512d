"""The gate record: its format round-trips, the orchestrator writes it, and a refused write is
said in the plan instead of being swallowed."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from mlflow_gitops.errors import DENIED, PermissionDenied
from mlflow_gitops.gates.cache import (
    MAX_TAG,
    cached_results,
    decode_gate_record,
    encode_gate_record,
    gate_record,
    gate_record_key,
    oversize,
)
from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.plan.gates import Check, GateResult
from mlflow_gitops.reconcile import make_plan
from mlflow_gitops.render import markdown, text
from tests.fakes import FakeRegistry
from tests.gates.fake_evidence import FakeEvidence, FakeModel
from tests.helpers import load_text

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
RESULT = GateResult(
    model="m",
    target="Production",
    version="v3",
    gate="max_size_mb",
    verdict="pass",
    checks=(Check(name="size_mb", candidate=12.0, bound="<= 50"),),
    baseline_version=2,
    message="passed",
    inputs="abc",
)
SPEC = """
version: 1
models:
  m:
    versions:
      - {version: 3, stage: Production}
    gates:
      Production:
        - {max_size_mb: 50}
"""


def test_a_record_round_trips_and_is_reused_only_for_the_same_inputs() -> None:
    value = encode_gate_record("abc", [RESULT], NOW)
    decoded = decode_gate_record(value)
    assert decoded == ("abc", (RESULT.model_copy(update={"cached": True}),))
    tags = {gate_record_key("Production"): value}
    assert cached_results(tags, "Production", "abc") == decoded[1]
    assert cached_results(tags, "Production", "other inputs") is None
    assert cached_results(tags, "alias:champion", "abc") is None
    for unreadable in ("", "null", "[]", '{"inputs": 3, "results": []}', '{"results": [1]}'):
        assert decode_gate_record(unreadable) is None, unreadable


def test_a_record_too_large_for_a_tag_says_so() -> None:
    many = [RESULT.model_copy(update={"message": "x" * 500}) for _ in range(10)]
    size = len(encode_gate_record("abc", many, NOW))
    assert size > MAX_TAG
    why = oversize(gate_record("m", 3, "Production", "abc", many, NOW))
    assert why == f"the record is {size:,} characters, over the 4,900 a version tag holds"
    assert oversize(gate_record("m", 3, "Production", "abc", [RESULT], NOW)) is None


def _registry() -> FakeRegistry:
    versions = (
        VersionState(version=2, stage="Production", run_id="r2"),
        VersionState(version=3, stage="Staging", run_id="r3"),
    )
    return FakeRegistry(models={"m": ModelState(name="m", versions=versions)})


def _evidence() -> FakeEvidence:
    return FakeEvidence(models={"models:/m/3": FakeModel(size_mb=12.0)})


def test_make_plan_writes_the_records_and_the_next_plan_reuses_them(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, SPEC)
    registry = _registry()
    first = make_plan(loaded, registry, _evidence(), NOW).plan
    assert registry.calls[-1] == ("set_version_tag", "m", "3", "mlflow_gitops.gate.Production")
    assert not first.notes
    evidence = _evidence()
    second = make_plan(loaded, registry, evidence, NOW).plan
    assert [g.cached for g in second.gates] == [True]
    assert evidence.loads == 0


class ReadOnlyRegistry(FakeRegistry):
    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        raise PermissionDenied(
            f"{DENIED}: set tag at {name} version {version}: user 'viewer' holds READ on {name}",
            "ask an MLflow admin for EDIT",
        )


def test_a_refused_record_is_said_in_the_plan(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, SPEC)
    registry = ReadOnlyRegistry(models=_registry().models)
    plan = make_plan(loaded, registry, _evidence(), NOW).plan
    note = (
        f"gate results not recorded at m/3: {DENIED}: set tag at m version 3: user 'viewer' "
        "holds READ on m; the next plan will evaluate again"
    )
    assert plan.notes == (note,)
    assert [g.verdict for g in plan.gates] == ["pass"]  # the verdict itself stands
    assert f"Note: {note}" in text.render_plan(plan)
    assert "> [!NOTE]\n> gate results not recorded at m/3" in markdown.render_plan(plan)
    # and the next plan evaluates again, as the note says
    evidence = _evidence()
    again = make_plan(loaded, registry, evidence, NOW).plan
    assert [g.cached for g in again.gates] == [False]
    assert evidence.loads == 1


def test_a_record_too_large_for_a_tag_is_said_in_the_plan(tmp_path: Path) -> None:
    tags = ", ".join(f"reviewed_by_the_team_number_{i:02d}" for i in range(50))
    loaded = load_text(tmp_path, SPEC + f"        - {{require_tags: [{tags}]}}\n")
    registry = _registry()
    plan = make_plan(loaded, registry, _evidence(), NOW).plan
    assert [(g.gate, g.verdict) for g in plan.gates] == [
        ("max_size_mb", "pass"),
        ("require_tags", "fail"),
    ]
    assert not [c for c in registry.calls if c[0] == "set_version_tag"]
    [note] = plan.notes
    assert re.fullmatch(
        r"gate results not recorded at m/3: the record is \d,\d{3} characters, over the 4,900 "
        r"a version tag holds; the next plan will evaluate again",
        note,
    )
    assert f"Note: {note}" in text.render_plan(plan)
    evidence = _evidence()
    again = make_plan(loaded, registry, evidence, NOW).plan
    assert [g.cached for g in again.gates] == [False, False]
    assert evidence.loads == 1
    assert again.notes == plan.notes
