"""Gate cases as data: each file in cases/ holds the file (gate spec), the observed registry, the
evidence values, and the expected verdicts, messages, blocks, records and evidence calls.

A case may go on with `again:`: a second plan after the first one's gate records were written on
the versions (as the orchestrator writes them), with `evidence:` overrides, optionally another
`desired:` file (a new candidate) or `observed:` registry (the records are written on it by model
and version), and its own `expected:`.
On a mismatch the assertion shows both sides as YAML, line by line; the actual YAML can be pasted
into the case once it is right.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlflow_gitops.gates.cache import GateRecord, decode_gate_record
from mlflow_gitops.gates.port import Evidence
from mlflow_gitops.gates.run import GateRun, run_gates
from mlflow_gitops.observed import RegistryState
from mlflow_gitops.plan.gates import Check, GateResult
from mlflow_gitops.plan.planner import plan
from mlflow_gitops.record import GATE_TAG_PREFIX, SCORES_TAG_PREFIX, decode_scores
from mlflow_gitops.spec.located import LoadedSpec
from tests.fakes import observed_from_data
from tests.gates.fake_evidence import FakeEvidence
from tests.helpers import load_text

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
_evidence: Evidence = FakeEvidence()  # the fake satisfies the port (checked by mypy)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_case(case: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(case.read_text(encoding="utf-8"))
    assert set(data) <= {"description", "desired", "observed", "evidence", "expected", "again"}
    loaded = load_text(tmp_path, data["desired"])
    observed = RegistryState(models=observed_from_data(data.get("observed") or {}))
    first = _check(loaded, observed, data["evidence"], data["expected"], case.stem)
    if "again" in data:
        then = data["again"]
        assert set(then) <= {"desired", "observed", "evidence", "expected"}
        evidence = {**data["evidence"], **(then.get("evidence") or {})}
        if "desired" in then:
            (tmp_path / "again").mkdir()
            loaded = load_text(tmp_path / "again", then["desired"])
        if "observed" in then:
            observed = RegistryState(models=observed_from_data(then["observed"]))
        _check(loaded, _written(observed, first.records), evidence, then["expected"], "again")


def _check(
    loaded: LoadedSpec,
    observed: RegistryState,
    evidence_doc: dict[str, Any],
    expected: dict[str, Any],
    where: str,
) -> GateRun:
    evidence = FakeEvidence.from_data(evidence_doc)
    run = run_gates(loaded, plan(loaded, observed, NOW), observed, evidence, NOW)
    actual = {
        "gates": [_result(g) for g in run.plan.gates],
        "blocked": {m: list(r) for m, r in run.plan.blocked.items()},
        "records": [_record(r) for r in run.records],
        "calls": evidence.calls,
        "loads": evidence.loads,
    }
    wanted = {k: expected.get(k, [] if k != "loads" else 0) for k in actual}
    wanted["blocked"] = expected.get("blocked") or {}
    assert set(expected) <= set(actual), f"{where}: unknown keys {set(expected) - set(actual)}"
    got, want = _yaml(actual), _yaml(wanted)
    if got != want:
        diff = difflib.unified_diff(
            want.splitlines(True), got.splitlines(True), "expected", "actual"
        )
        pytest.fail(f"{where}: the gates decided otherwise\n{''.join(diff)}", pytrace=False)
    # pure: the same inputs give the same run
    assert (
        run_gates(
            loaded, plan(loaded, observed, NOW), observed, FakeEvidence.from_data(evidence_doc), NOW
        )
        == run
    )
    return run


def _result(g: GateResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "gate": f"{g.gate} for {g.version} -> {g.target}",
        "verdict": g.verdict + (" (cached)" if g.cached else ""),
        "baseline": f"v{g.baseline_version}" if g.baseline_version else None,
        "message": g.message,
    }
    if g.checks:
        out["checks"] = [_check_line(c) for c in g.checks]
    if g.reused:
        out["reused"] = [
            f"{r.side} v{r.version} scored {r.scored_at} on data {r.data}"
            + (f" hook {r.hook}" if r.hook else "")
            + f", {r.rows} rows"
            for r in g.reused
        ]
    return out


def _check_line(c: Check) -> str:
    text = c.name
    if c.candidate is not None:
        text += f" {c.candidate!r}"
    if c.baseline is not None:
        text += f" vs {c.baseline!r}"
    if c.bound:
        text += f" {c.bound}"
    text += f" -> {c.verdict}"
    return text + (f": {c.message}" if c.message else "")


def _record(r: GateRecord) -> str:
    if r.key.startswith(SCORES_TAG_PREFIX):
        scores = decode_scores(r.value)
        assert scores is not None, "the runner wrote scores it cannot read back"
        metrics = ", ".join(f"{k} {v!r}" for k, v in scores.metrics.items())
        return f"{r.model}/{r.version} scores ({metrics}; {scores.rows} rows)"
    decoded = decode_gate_record(r.value)
    assert decoded is not None, "the runner wrote a record it cannot read back"
    verdicts = ", ".join(f"{g.gate} {g.verdict}" for g in decoded[1])
    return f"{r.model}/{r.version} {r.key.removeprefix(GATE_TAG_PREFIX)} ({verdicts})"


def _written(observed: RegistryState, records: tuple[GateRecord, ...]) -> RegistryState:
    """The registry after the orchestrator wrote the records as version tags."""
    models = dict(observed.models)
    for r in records:
        model = models[r.model]
        versions = tuple(
            replace(v, tags={**v.tags, r.key: r.value}) if v.version == r.version else v
            for v in model.versions
        )
        models[r.model] = replace(model, versions=versions)
    return RegistryState(models=models)


def _yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)
