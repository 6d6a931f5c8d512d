"""Gates on real logged models: the course's comparison, made declarative."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.cli_runner import run_cli
from tests.gates.harness import (
    EVALUATE,
    Trained,
    plan_with_gates,
    registered,
    spec,
)
from tests.integration.mlflow_helpers import client

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_evaluate_passes_a_better_candidate_and_blocks_a_worse_one(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "eval-gate"
    registered(trained, name, {1: "Production"})  # linear regression serves
    better = spec(
        trained,
        name,
        f"versions:\n  - {{version: 2, stage: Production}}\ngates:\n  Production:{textwrap.indent(EVALUATE, '    ')}",
    )
    plan, _ = plan_with_gates(trained, better)
    [gate] = plan.gates  # type: ignore[attr-defined]
    assert gate.verdict == "pass", gate
    assert gate.baseline_version == 1
    rmse = next(c for c in gate.checks if c.name == "rmse")
    assert rmse.candidate < rmse.baseline
    assert not plan.blocked  # type: ignore[attr-defined]

    applied = run_cli(capsys, "apply", better, "--tracking-uri", trained.uri)
    assert applied.code == 0, applied.out + applied.err
    assert "gate evaluate for v2 -> Production, baseline v1: PASS" in applied.out

    # now the linear model (worse) may not take Production back: blocked, exit 3, untouched
    worse = spec(
        trained,
        name,
        f"versions:\n  - {{version: 1, stage: Production}}\ngates:\n  Production:{textwrap.indent(EVALUATE, '    ')}",
    )
    blocked = run_cli(capsys, "apply", worse, "--tracking-uri", trained.uri)
    assert blocked.code == 3, blocked.out + blocked.err
    assert "gate evaluate for Production failed on v1" in blocked.out
    assert client(trained.uri).get_model_version(name, "1").current_stage == "Archived"
    markdown = run_cli(capsys, "plan", worse, "--tracking-uri", trained.uri, "--format", "markdown")
    assert markdown.code == 3
    assert "| evaluate" in markdown.out
    assert "```mermaid" in markdown.out


def test_results_are_cached_and_rerun_when_the_data_changes(trained: Trained) -> None:
    from mlflow_gitops.demo.taxi import write_months

    name = "cache-gate"
    registered(trained, name, {1: "Production"})
    path = spec(
        trained,
        name,
        f"versions:\n  - {{version: 3, stage: Production}}\ngates:\n  Production:{textwrap.indent(EVALUATE, '    ')}",
    )
    first, evidence = plan_with_gates(trained, path)
    assert evidence.loads == 2
    assert not first.gates[0].cached  # type: ignore[attr-defined]
    assert "mlflow_gitops.gate.Production" in client(trained.uri).get_model_version(name, "3").tags

    second, evidence = plan_with_gates(trained, path)
    assert evidence.loads == 0, "a cached verdict must not load any model"
    assert second.gates[0].cached  # type: ignore[attr-defined]
    assert second.gates[0].verdict == first.gates[0].verdict  # type: ignore[attr-defined]

    write_months(trained.folder / "data", rows=3000, months=((2021, 3),), seed=7)
    third, evidence = plan_with_gates(trained, path)
    assert evidence.loads == 2
    assert not third.gates[0].cached  # type: ignore[attr-defined]


def test_a_series_of_candidates_scores_the_champion_once(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "series-gate"
    registered(trained, name, {1: "Production"})  # the champion; 2 and 3 are candidates in turn
    gate = f"gates:\n  Production:{textwrap.indent(EVALUATE, '    ')}"

    def candidate(version: int) -> str:
        return spec(
            trained, name, f"versions:\n  - {{version: {version}, stage: Production}}\n{gate}"
        )

    first, evidence = plan_with_gates(trained, candidate(2))
    assert evidence.loads == 2
    [scored] = first.gates  # type: ignore[attr-defined]
    assert scored.reused == ()
    champion = client(trained.uri).get_model_version(name, "1").tags
    assert any(k.startswith("mlflow_gitops.scores.") for k in champion), champion

    second, evidence = plan_with_gates(trained, candidate(3))
    assert evidence.loads == 1, "the champion's recorded scores are read, not scored again"
    [reused] = second.gates  # type: ignore[attr-defined]
    assert [(r.side, r.version) for r in reused.reused] == [("baseline", 1)]
    before = {c.name: c.baseline for c in scored.checks if c.baseline is not None}
    assert {c.name: c.baseline for c in reused.checks if c.baseline is not None} == before
    shown = run_cli(capsys, "plan", candidate(3), "--tracking-uri", trained.uri)
    assert "baseline v1 scores reused: computed" in shown.out, shown.out

    hook = trained.folder / "features.py"
    original = hook.read_text()
    try:
        hook.write_text(original + "\n# edited: the scores of every version are stale\n")
        third, evidence = plan_with_gates(trained, candidate(3))
        assert evidence.loads == 2
        assert third.gates[0].reused == ()  # type: ignore[attr-defined]
        assert not third.gates[0].cached  # type: ignore[attr-defined]
    finally:
        hook.write_text(original)


@pytest.mark.parametrize(
    ("gate", "expected"),
    [
        (
            "- evaluate:\n    data: data/missing.parquet\n    target: x\n    metrics: {rmse: {threshold: 1}}",
            "cannot read the evaluation data",
        ),
        (
            "- evaluate:\n    data: data/green_tripdata_2021-03.parquet\n    prepare: features:broken\n    metrics: {rmse: {threshold: 100}}",
            "no such column: fare",
        ),
        (
            "- evaluate:\n    data: data/green_tripdata_2021-03.parquet\n    prepare: features:prepare\n    preprocessor: nope/pre.b\n    metrics: {rmse: {threshold: 100}}",
            "has no artifact nope/pre.b",
        ),
        ("- metric: never_logged\n  max: 1", "never logged the metric 'never_logged'"),
        ("- metric: rmse\n  max: 0.001", "rmse"),
        ("- max_size_mb: 0.000001", "size_mb"),
        ("- require_tags: [validated_by]", "tag validated_by: missing"),
        (
            "- latency: {batch_rows: 100, p95_ms: 0.000001}",
            "latency gate times predict on the evaluate gate's data",
        ),
    ],
    ids=[
        "missing-data",
        "failing-hook",
        "missing-preprocessor",
        "unlogged-metric",
        "metric-over",
        "too-big",
        "missing-tag",
        "latency-without-data",
    ],
)
def test_failures_are_verdicts_with_a_cause(
    trained: Trained, gate: str, expected: str, request: pytest.FixtureRequest
) -> None:
    name = f"err-{request.node.callspec.id}"
    registered(trained, name, {})
    path = spec(
        trained,
        name,
        f"versions:\n  - {{version: 2, stage: Staging}}\ngates:\n  staging:\n{textwrap.indent(gate, '    ')}",
    )
    plan, _ = plan_with_gates(trained, path)
    [result] = plan.gates  # type: ignore[attr-defined]
    assert result.verdict == "fail"
    assert expected in result.message
    assert name in plan.blocked  # type: ignore[attr-defined]


def test_passing_metric_size_tags_signature_and_latency(trained: Trained) -> None:
    name = "all-pass"
    registered(trained, name, {1: "Production"})
    client(trained.uri).set_model_version_tag(name, "2", "validated_by", "carol")
    gates = textwrap.indent(EVALUATE, "    ") + (
        "\n    - metric: rmse\n      max: 100\n    - max_size_mb: 50\n    - require_tags: [validated_by]"
        "\n    - require_signature: true\n    - latency: {batch_rows: 500, p95_ms: 60000}"
    )
    path = spec(
        trained,
        name,
        f"versions:\n  - {{version: 2, stage: Production}}\ngates:\n  Production:{gates}",
    )
    plan, _ = plan_with_gates(trained, path)
    kinds = {g.gate: g.verdict for g in plan.gates}  # type: ignore[attr-defined]
    assert kinds == dict.fromkeys(
        ("evaluate", "metric", "max_size_mb", "require_tags", "require_signature", "latency"),
        "pass",
    )
    latency = next(g for g in plan.gates if g.gate == "latency")  # type: ignore[attr-defined]
    assert latency.checks[1].baseline is not None  # the baseline is timed too


def test_unloadable_model_fails_the_gate(trained: Trained) -> None:
    name = "broken-model"
    c = client(trained.uri)
    c.create_registered_model(name)
    c.create_model_version(
        name, source=str(trained.folder / "no-such-model"), run_id=trained.runs[0]
    )
    path = spec(
        trained,
        name,
        "versions:\n  - {version: 1, stage: Production}\ngates:\n  Production:\n    - require_signature: true",
    )
    plan, _ = plan_with_gates(trained, path)
    [result] = plan.gates  # type: ignore[attr-defined]
    assert result.verdict == "fail"
    assert "cannot read the model" in result.message


def test_rollback_skips_gates_when_asked(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "rollback"
    registered(trained, name, {})
    strict = "    on_rollback: skip\n    checks:\n      - metric: rmse\n        max: 0.001"
    first = spec(trained, name, "versions:\n  - {version: 1, stage: Production}")
    assert run_cli(capsys, "apply", first, "--tracking-uri", trained.uri).code == 0
    second = spec(trained, name, "versions:\n  - {version: 2, stage: Production}")
    assert run_cli(capsys, "apply", second, "--tracking-uri", trained.uri).code == 0
    back = spec(
        trained,
        name,
        f"versions:\n  - {{version: 1, stage: Production}}\ngates:\n  Production:\n{strict}",
    )
    plan, _ = plan_with_gates(trained, back)
    [result] = plan.gates  # type: ignore[attr-defined]
    assert result.gate == "rollback"
    assert result.verdict == "pass"
    new = spec(
        trained,
        name,
        f"versions:\n  - {{version: 3, stage: Production}}\ngates:\n  Production:\n{strict}",
    )
    plan, _ = plan_with_gates(trained, new)
    assert plan.gates[0].verdict == "fail"  # type: ignore[attr-defined]


def test_saved_plan_is_refused_when_gate_inputs_changed(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow_gitops.demo.taxi import write_months

    name = "saved-gate"
    registered(trained, name, {1: "Production"})
    data = trained.folder / "saved-data"
    write_months(data, rows=2000, months=((2021, 3),))
    gate = EVALUATE.replace("data/green_tripdata", "saved-data/green_tripdata")
    path = spec(
        trained,
        name,
        f"versions:\n  - {{version: 2, stage: Production}}\ngates:\n  Production:{textwrap.indent(gate, '    ')}",
    )
    out = trained.folder / "saved-gate.json"
    planned = run_cli(capsys, "plan", path, "--tracking-uri", trained.uri, "--out", str(out))
    assert planned.code == 0, planned.out + planned.err
    write_months(data, rows=2000, months=((2021, 3),), seed=11)  # the evaluation data changes
    refused = run_cli(capsys, "apply", str(out), "--tracking-uri", trained.uri)
    assert refused.code == 1
    assert "gate inputs changed since this plan was made" in refused.err
    assert client(trained.uri).get_model_version(name, "2").current_stage == "None"


def test_gates_never_load_a_model_from_outside_the_registry(
    trained: Trained, tmp_path: Path
) -> None:
    name = "outside-source"
    registered(trained, name, {})
    outside = tmp_path / "planted-model"
    outside.mkdir()
    path = spec(
        trained,
        name,
        f"versions:\n  - source: {outside.as_uri()}\n    stage: Production\n"
        "gates:\n  Production:\n    - require_signature: true",
    )
    plan, evidence = plan_with_gates(trained, path)
    [result] = plan.gates  # type: ignore[attr-defined]
    assert result.verdict == "fail"
    assert "load models only through the configured registry" in result.message
    assert evidence.loads == 0
