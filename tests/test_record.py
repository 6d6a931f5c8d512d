"""What the tool writes into MLflow reads back as written (each encoder beside its decoder); the
durable record of applies, history blocks edited by hand as drift, complete annotations per apply,
and history read from the record: on the fake registry."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlflow_gitops import history as hist
from mlflow_gitops.audit import AuditContext
from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.plan.changes import RestoreHistory, SetVersionDescription
from mlflow_gitops.plan.planner import plan
from mlflow_gitops.reconcile import apply_plan, make_plan
from mlflow_gitops.reconcile.apply import AUDIT_RECORD
from mlflow_gitops.record import (
    CONTEXT_TAGS,
    HISTORY_MARKER,
    HOLDER_TAG,
    KIND_TAG,
    LEASE_TAG,
    LEGACY_TAGS,
    LOCK_TAG,
    MAX_DESCRIPTION,
    MAX_TAG_VALUE,
    PROBE_TAG,
    RECORD_TAG,
    REGISTRATION_TAG,
    RESULT_TAG,
    TOOL_TAG_PREFIX,
    USER_TAG,
    GateRecord,
    HistoryLine,
    Scores,
    decode_aliases,
    decode_gate_record,
    decode_scores,
    digest,
    encode_aliases,
    encode_gate_record,
    encode_scores,
    gate_tag,
    history_altered,
    history_line,
    join_history,
    last_move,
    model_record,
    read_history,
    read_history_line,
    read_record,
    recorded_aliases,
    recorded_verdict,
    scores_tag,
    split_history,
    text_altered,
    version_record,
)
from mlflow_gitops.record.run import (
    AuditRun,
    RecordedChange,
    RecordFinish,
    RecordStart,
    bucket_tag,
    changes_document,
    changes_from_document,
    context_from_tags,
    context_tags,
    decode_bucket,
    encode_buckets,
    history_lines,
    model_filter,
    model_key,
    rebuild_block,
    start_tags,
)
from mlflow_gitops.render.markdown import render_plan as render_markdown
from mlflow_gitops.render.text import render_history, render_plan, render_result
from mlflow_gitops.spec.model import EVALUATION_METRICS
from tests.fakes import FakeRegistry
from tests.helpers import load_text

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
ALICE = AuditContext(commit="1a2b3c4d5e6f", pr=12, actor="alice", run_url="https://ci/runs/1")
BOB = AuditContext(actor="bob")  # outside git, no --commit: nothing else is known

STAGING = "version: 1\nmodels:\n  m:\n    versions:\n      - {version: 1, stage: Staging}\n"
PRODUCTION = (
    "version: 1\nmodels:\n  m:\n    versions:\n"
    "      - {version: 1, stage: Production, description: 'GBR, 50 trees'}\n"
)


def fresh() -> FakeRegistry:
    return FakeRegistry(models={"m": ModelState(name="m", versions=(VersionState(1, "None"),))})


def two_applies(tmp_path: Path) -> FakeRegistry:
    fake = fresh()
    assert apply_plan(make_plan(load_text(tmp_path, STAGING), fake, None, NOW), fake, ALICE, NOW).ok
    later = NOW + timedelta(hours=3)
    assert apply_plan(
        make_plan(load_text(tmp_path, PRODUCTION), fake, None, later), fake, BOB, later
    ).ok
    return fake


def v1(fake: FakeRegistry) -> VersionState:
    found = fake.models["m"].version(1)
    assert found is not None
    return found


def test_each_apply_logs_one_audit_run_with_context_changes_steps_and_gates(
    tmp_path: Path,
) -> None:
    fake = two_applies(tmp_path)
    first, second = fake.audit_runs
    assert first.context == ALICE
    assert second.context == BOB
    assert (first.status, second.status) == ("FINISHED", "FINISHED")
    assert fake.audit_models[first.run_id] == ("m",)
    done = fake.audit_finished[second.run_id]
    assert done.ok
    assert done.changes["m"] == (  # in the order they were applied
        RecordedChange(1, "description updated"),
        RecordedChange(1, "Staging -> Production"),
    )
    assert [s["status"] for s in done.steps] == ["applied", "applied"]
    assert done.gates == ()
    # the record opens before the first write and closes after the last
    writes = [c[0] for c in fake.calls]
    assert writes.index("start_record") < writes.index("transition_stage")
    assert writes[-2:] == ["finish_record", "unlock"]  # finished while the lock is held


def test_a_hand_written_description_is_drift_and_apply_restores_the_history(
    tmp_path: Path,
) -> None:
    fake = two_applies(tmp_path)
    before = v1(fake).description
    # the course notebook's own call: update_model_version(description=...)
    fake.set_version_description("m", 1, "transitioned to Production on 2026-11-27")
    desired = load_text(tmp_path, PRODUCTION)
    planned = make_plan(desired, fake, None, NOW)
    restore = [c for c in planned.plan.changes if isinstance(c, RestoreHistory)]
    text = [c for c in planned.plan.changes if isinstance(c, SetVersionDescription)]
    assert len(restore) == 1
    assert restore[0].drift
    assert restore[0].before == ""
    assert restore[0].after == split_history(before)[1]  # rebuilt from the record, line for line
    assert len(text) == 1
    assert text[0].drift
    shown = render_plan(planned.plan)
    assert (
        "~ v1 history block: removed -> restored from the audit record (3 lines) "
        "[drift: changed in the registry by hand]"
    ) in shown
    assert "2 drifted from the file" in shown
    assert "**drift**" in render_markdown(planned.plan)
    assert ("read_records", "<audit>", "m") in fake.calls  # only for the drifted model

    assert apply_plan(planned, fake, AuditContext(actor="carol"), NOW + timedelta(days=1)).ok
    user, block = split_history(v1(fake).description)
    assert user == "GBR, 50 trees"
    assert block.startswith(split_history(before)[1])
    assert block.endswith("history block restored from the audit record (by carol)")
    assert plan(desired, fake.read(), NOW).is_empty
    # history loses nothing: every event, from the record
    state = fake.models["m"]
    found = hist.events(state, None, fake.read_records(["m"])["m"])
    assert {e.source for e in found} == {"record"}
    assert [e.change for e in found] == [
        "history block restored from the audit record",
        "description updated",
        "Staging -> Production",
        "description updated",
        "None -> Staging",
    ]


def test_an_edited_history_block_is_drift_too(tmp_path: Path) -> None:
    fake = two_applies(tmp_path)
    user, block = split_history(v1(fake).description)
    forged = block.replace("by bob", "by mallory")
    fake.set_version_description("m", 1, f"{user}\n\n{forged}")
    planned = make_plan(load_text(tmp_path, PRODUCTION), fake, None, NOW)
    (restore,) = [c for c in planned.plan.changes if isinstance(c, RestoreHistory)]
    assert restore.before == forged
    assert restore.after == block
    assert "history block: edited by hand -> restored" in render_plan(planned.plan)


def test_an_apply_that_cannot_record_changes_nothing(tmp_path: Path) -> None:
    fake = fresh()
    fake.record_error = "start"
    result = apply_plan(make_plan(load_text(tmp_path, STAGING), fake, None, NOW), fake, ALICE, NOW)
    assert not result.ok
    assert fake.writes == 0
    assert v1(fake).stage == "None"
    assert result.steps[0].status == "failed"
    assert result.steps[0].detail.startswith(
        "cannot write the audit record, so nothing was applied"
    )


def test_an_apply_whose_record_cannot_be_finished_says_what_was_applied(tmp_path: Path) -> None:
    fake = fresh()
    fake.record_error = "finish"
    result = apply_plan(make_plan(load_text(tmp_path, STAGING), fake, None, NOW), fake, ALICE, NOW)
    assert not result.ok
    assert v1(fake).stage == "Staging"
    *changes, last = result.steps
    assert [s.status for s in changes] == ["applied"]
    assert (last.model, last.status) == (AUDIT_RECORD, "failed")
    assert "the 1 change(s) marked applied above are in the registry" in last.detail
    shown = render_result(result)
    assert "✓ applied     v1 None -> Staging" in shown
    assert "finish audit run run1 in experiment mlflow-gitops-audit" in shown


def test_each_apply_writes_a_complete_record_and_clears_what_it_does_not_know(
    tmp_path: Path,
) -> None:
    legacy = dict.fromkeys(LEGACY_TAGS.values(), "old")
    fake = FakeRegistry(
        models={
            "m": ModelState(name="m", tags=legacy, versions=(VersionState(1, "None", tags=legacy),))
        }
    )
    assert apply_plan(make_plan(load_text(tmp_path, STAGING), fake, None, NOW), fake, ALICE, NOW).ok
    assert not set(LEGACY_TAGS.values()) & set(v1(fake).tags)  # an older release's fields: gone
    assert not set(LEGACY_TAGS.values()) & set(fake.models["m"].tags)
    first = read_record(v1(fake).tags)
    assert (first["commit"], first["pr"], first["actor"]) == ("1a2b3c4d5e6f", 12, "alice")

    fake.calls.clear()
    later = NOW + timedelta(hours=1)
    assert apply_plan(
        make_plan(load_text(tmp_path, PRODUCTION), fake, None, later), fake, BOB, later
    ).ok
    record = read_record(v1(fake).tags)
    assert record["actor"] == "bob"
    assert (record["commit"], record["pr"], record["run_url"]) == (None, None, None)
    assert record["change"] == "Staging -> Production; description"
    assert record["stage_since"] == later.isoformat(timespec="seconds")
    assert record["audit_run"] == "run2"
    # per touched version: the description and one record tag (besides the planned changes); the
    # model itself did not change, so its record still tells the apply that last changed it
    annotation = [c for c in fake.calls if c[0].startswith("set_version") and c[1:3] == ("m", "1")]
    assert annotation[-2:] == [
        ("set_version_description", "m", "1"),
        ("set_version_tag", "m", "1", RECORD_TAG),
    ]
    assert [c for c in fake.calls if c[0].startswith(("set_model", "delete_model"))] == []
    model = read_record(fake.models["m"].tags)
    assert (model["actor"], model["commit"], model["audit_run"]) == (
        "alice",
        "1a2b3c4d5e6f",
        "run1",
    )


def test_history_prints_each_context_once_and_newest_first_within_a_day(tmp_path: Path) -> None:
    fake = FakeRegistry(
        models={
            "m": ModelState(
                name="m", versions=(VersionState(1, "None"), VersionState(2, "Production"))
            )
        }
    )
    alias = "version: 1\nmodels:\n  m:\n    aliases: {champion: 2}\n"
    tag = "version: 1\nmodels:\n  m:\n    versions:\n      - {version: 1, tags: {k: v}}\n"
    assert apply_plan(make_plan(load_text(tmp_path, tag), fake, None, NOW), fake, ALICE, NOW).ok
    later = NOW + timedelta(hours=5)  # same day, later
    assert apply_plan(
        make_plan(load_text(tmp_path, alias), fake, None, later), fake, ALICE, later
    ).ok
    for runs in (fake.read_records(["m"])["m"], ()):  # from the record, and from the blocks
        found = hist.events(fake.models["m"], None, runs)
        text = render_history("m", found)
        assert text.count("commit 1a2b3c4") == 2, text
        lines = text.splitlines()[1:]
        assert "alias champion set" in lines[0], text
        assert "tag k set to 'v'" in lines[1], text
    recorded = render_history(
        "m", hist.events(fake.models["m"], None, fake.read_records(["m"])["m"])
    )
    assert (
        "2026-11-27 14:00  v2    alias champion set  (commit 1a2b3c4, PR #12, by alice)" in recorded
    )


def test_history_of_an_old_block_drops_the_context_from_the_change() -> None:
    block = (
        f"{HISTORY_MARKER}\n- 2026-11-26: Production -> Archived (replaced by version 3, commit "
        "1a2b3c4, by alice)\n- 2026-11-26: alias champion set (commit 1a2b3c4, by alice)"
    )
    model = ModelState(name="m", versions=(VersionState(2, "Archived", description=block),))
    found = hist.events(model)
    assert [e.change for e in found] == [
        "alias champion set",
        "Production -> Archived (replaced by version 3)",
    ]
    assert all(e.commit == "1a2b3c4" and e.actor == "alice" for e in found)


def test_models_are_found_through_64_bucket_tags_whatever_their_names() -> None:
    name = "prévision 'trips' / v2"
    key = bucket_tag(name)
    assert key.startswith("mlflow_gitops.models.")
    assert model_filter(name) == f"tags.`{key}` LIKE '%\"{model_key(name)}\"%'"
    changes = (RecordedChange(3, "Staging -> Production", "replaced by version 2"),)
    tags = encode_buckets({name: changes, "other": ()})
    assert decode_bucket(tags[key], name) == (True, changes)
    assert decode_bucket(tags[key], "absent") == (False, ())
    # an apply of 1,000 models writes at most 64 tags, each within MLflow's limit
    thousand = encode_buckets({f"model-{i}": changes for i in range(1000)})
    assert len(thousand) == 64
    assert max(len(v) for v in thousand.values()) <= 5000
    assert all(decode_bucket(thousand[bucket_tag(f"model-{i}")], f"model-{i}") == (True, changes)
               for i in range(1000))  # fmt: skip
    # changes that do not fit in a tag are pointed to the changes.json artifact
    many = tuple(RecordedChange(i, "tag k set to '" + "x" * 100 + "'") for i in range(100))
    assert decode_bucket(encode_buckets({name: many})[key], name) == (True, None)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({}, {}),
        ({"mlflow_gitops.actor": "alice"}, {"actor": "alice"}),
        ({RECORD_TAG: '{"actor": "bob", "commit": null}', "mlflow_gitops.actor": "x"},
         {"actor": "bob", "commit": None}),
        ({RECORD_TAG: "not json", "mlflow_gitops.commit": "abc"}, {"commit": "abc"}),
    ],
)  # fmt: skip
def test_read_record_prefers_the_record_tag_and_falls_back_to_the_legacy_tags(
    tags: dict[str, str], expected: dict[str, object]
) -> None:
    assert read_record(tags) == expected


def test_history_falls_back_per_version_when_the_record_lacks_it() -> None:
    block = f"{HISTORY_MARKER}\n- 2026-11-20: None -> Staging (by dan)"
    model = ModelState(
        name="m",
        versions=(
            VersionState(1, "Staging", description=block),
            VersionState(2, "Production"),
            VersionState(3, "None", created_at=1_764_000_000_000),
        ),
    )
    run = AuditRun(
        "r1", 1_764_230_400_000, ALICE, changes=(RecordedChange(2, "None -> Production"),)
    )
    found = hist.events(model, None, (run,))
    assert {e.version: e.source for e in found} == {1: "annotation", 2: "record", 3: "registry"}


def test_rollback_finds_the_previous_holder_in_the_record_after_a_hand_edit(
    tmp_path: Path,
) -> None:
    from mlflow_gitops.propose import rollback

    fake = FakeRegistry(
        models={"m": ModelState(name="m", versions=(VersionState(1, "None"), VersionState(2)))}
    )
    first = "version: 1\nmodels:\n  m:\n    versions:\n      - {version: 1, stage: Production}\n"
    second = (
        "version: 1\nmodels:\n  m:\n    versions:\n      - {version: 1, stage: Archived}\n"
        "      - {version: 2, stage: Production}\n"
    )
    assert apply_plan(make_plan(load_text(tmp_path, first), fake, None, NOW), fake, ALICE, NOW).ok
    later = NOW + timedelta(hours=1)
    assert apply_plan(
        make_plan(load_text(tmp_path, second), fake, None, later), fake, BOB, later
    ).ok
    fake.set_version_description("m", 1, "old baseline")  # the history block is gone
    live = fake.models["m"]
    assert hist.previous_holder(live) is None  # the descriptions alone no longer tell
    file = tmp_path / "registry.yaml"
    edit = rollback(file.read_text(), file, "m", live, fake.read_records(["m"])["m"])
    assert edit.summary == "m: Production back to version 1"


# --- each encoder beside its decoder: what the tool writes reads back as it was ----------------


@pytest.mark.parametrize("context", [ALICE, BOB, AuditContext()])
@pytest.mark.parametrize(
    ("what", "note"),
    [
        ("Staging -> Production", "replaced by version 3"),
        ("alias champion set", "was version 2"),
        ("tag k set to 'a, b'", ""),
        ("registered from s3://bucket/model", ""),
        ("Production -> Archived", "replaced by version 3, 4"),
    ],
)
def test_a_history_line_reads_back_as_written(context: AuditContext, what: str, note: str) -> None:
    written = history_line("2026-11-27", what, note, context)
    assert written.startswith("- 2026-11-27: ")
    expected = HistoryLine(
        "2026-11-27", what, note, context.short_commit, context.pr, context.actor
    )
    assert read_history_line(written) == expected
    # and inside a description, after the user's text, as the applier writes it
    description = join_history("GBR, 50 trees", "", [written, written])
    assert split_history(description)[0] == "GBR, 50 trees"
    assert read_history(description) == [expected, expected]


def test_the_history_block_gives_way_line_by_line_within_mlflows_limit() -> None:
    lines = [history_line("2026-11-27", f"tag k set to '{i}'", "", ALICE) for i in range(200)]
    description = join_history("x" * 1000, "", lines)
    assert len(description) <= MAX_DESCRIPTION
    kept = read_history(description)
    assert kept[-1].what == "tag k set to '199'"  # the newest stay, the oldest give way
    assert 0 < len(kept) < 200
    assert read_history("no block here") == []
    assert read_history_line("- someone wrote this by hand") is None


def test_a_version_record_reads_back_with_its_last_move_and_fingerprints() -> None:
    description = join_history("text", "", [history_line("2026-11-27", "a", "", ALICE)])
    raw = version_record(
        ALICE,
        "2026-11-27T09:00:00+00:00",
        ["Staging -> Production", "description"],
        stage_since="2026-11-27T09:00:00+00:00",
        audit_run="run7",
        description=description,
    )
    tags = {RECORD_TAG: raw}
    assert read_record(tags) == {
        "changed_at": "2026-11-27T09:00:00+00:00",
        "change": "Staging -> Production; description",
        "commit": "1a2b3c4d5e6f",
        "pr": 12,
        "actor": "alice",
        "run_url": "https://ci/runs/1",
        "stage_since": "2026-11-27T09:00:00+00:00",
        "audit_run": "run7",
        "text": digest("text"),
        "history": digest(split_history(description)[1]),
    }
    assert len(raw) <= MAX_TAG_VALUE
    assert last_move(tags) == ("Staging", "Production")
    assert not history_altered(description, tags)
    assert history_altered("text", tags)  # the block removed by hand
    assert not text_altered("text", tags)
    assert text_altered("edited", tags)
    unmoved = version_record(BOB, "t", ["tag k"], stage_since=None, audit_run=None, description="")
    assert last_move({RECORD_TAG: unmoved}) is None
    long = version_record(
        BOB, "t", ["x" * 3000] * 3, stage_since=None, audit_run=None, description=""
    )
    assert len(read_record({RECORD_TAG: long})["change"]) == 2000


@pytest.mark.parametrize("aliases", [{"champion": 3}, {"champion": 3, "challenger": 12}, {}])
def test_the_aliases_record_reads_back_as_written(aliases: dict[str, int]) -> None:
    assert decode_aliases(encode_aliases(aliases)) == (aliases or None)
    raw = model_record(ALICE, "t", aliases=aliases, audit_run="run1")
    assert recorded_aliases({RECORD_TAG: raw}) == (aliases or None)
    assert read_record({RECORD_TAG: raw})["audit_run"] == "run1"
    assert (
        recorded_aliases({RECORD_TAG: model_record(ALICE, "t", aliases=None, audit_run=None)})
        is None
    )
    # an older release's aliases tag reads the same way
    assert recorded_aliases({LEGACY_TAGS["aliases"]: encode_aliases(aliases)}) == (aliases or None)


def test_a_gate_record_reads_back_as_written() -> None:
    record = GateRecord(
        inputs="0123abcd",
        verdict="fail",
        at="2026-11-27T09:00:00+00:00",
        results=({"gate": "rmse", "verdict": "fail", "checks": [{"name": "rmse"}]},),
    )
    key = gate_tag("alias:champion")
    assert key == "mlflow_gitops.gate.alias:champion"
    tags = {key: encode_gate_record(record)}
    assert decode_gate_record(tags[key]) == record
    assert recorded_verdict(tags, "alias:champion") == "fail"
    assert recorded_verdict(tags, "Production") is None
    assert decode_gate_record("not json") is None
    assert decode_gate_record('{"verdict": "pass"}') is None  # no results: not a record


def test_a_versions_scores_read_back_to_the_same_bits_within_a_tag() -> None:
    awkward = [0.1 + 0.2, -0.0, 5e-324, 1.7976931348623157e308, math.inf, -math.inf, math.nan]
    metrics = {m: awkward[i % len(awkward)] for i, m in enumerate(EVALUATION_METRICS)}
    scores = Scores(
        key="ab" * 12,
        rows=80_372,
        metrics=metrics,
        at="2026-11-27T09:00:00+00:00",
        inputs={"data": "0123456789ab", "hook": "ba9876543210"},
        latency_ms={"p50_ms": 74.123456789, "p95_ms": 96.5},
        latency_rows=1000,
    )
    key = scores_tag("0123456789abcdef")
    assert key == "mlflow_gitops.scores.0123456789abcdef"
    value = encode_scores(scores)
    assert len(value) <= MAX_TAG_VALUE - 100  # every metric, timed: still one version tag
    back = decode_scores(value)
    assert back is not None
    assert {k: struct.pack("<d", v) for k, v in back.metrics.items()} == {
        k: struct.pack("<d", v) for k, v in metrics.items()
    }
    assert replace(back, metrics={}) == replace(scores, metrics={})
    untimed = replace(scores, metrics={"rmse": 6.5}, latency_ms={}, latency_rows=0)
    assert decode_scores(encode_scores(untimed)) == untimed
    for bad in ("not json", '{"rows": 3}', '{"key": "k", "rows": 3, "metrics": {"rmse": "x"}}'):
        assert decode_scores(bad) is None
    assert decode_scores(None) is None


@pytest.mark.parametrize("context", [ALICE, BOB, AuditContext(pr=7)])
def test_the_audit_runs_tags_read_back_as_written(context: AuditContext) -> None:
    assert context_from_tags(context_tags(context)) == context
    changes = (RecordedChange(2, "None -> Staging"), RecordedChange(1, "alias a set", "was 2"))
    start = start_tags(RecordStart(context, NOW, ("m", "n")))
    assert start[KIND_TAG] == "apply"
    assert context_from_tags(start) == context
    assert decode_bucket(start[bucket_tag("m")], "m") == (True, ())  # listed, no change yet
    doc = changes_document(RecordFinish(ok=True, changes={"m": changes}))
    assert changes_from_document(json.loads(json.dumps(doc)), "m") == changes
    assert changes_from_document(doc, "n") == ()


def test_the_audit_record_rebuilds_the_block_the_applier_wrote(tmp_path: Path) -> None:
    fake = two_applies(tmp_path)
    runs = fake.read_records(["m"])["m"]
    assert rebuild_block(runs, 1) == split_history(v1(fake).description)[1]
    assert [read_history_line(line) for line in history_lines(runs, 1)] == read_history(
        v1(fake).description
    )


def test_every_tag_the_tool_writes_carries_the_reserved_prefix() -> None:
    keys = [
        RECORD_TAG,
        gate_tag("Production"),
        REGISTRATION_TAG,
        LOCK_TAG,
        HOLDER_TAG,
        LEASE_TAG,
        USER_TAG,
        PROBE_TAG,
        KIND_TAG,
        RESULT_TAG,
        bucket_tag("m"),
        *CONTEXT_TAGS.values(),
        *LEGACY_TAGS.values(),
    ]
    assert all(k.startswith(TOOL_TAG_PREFIX) for k in keys)
    assert len(set(keys)) == len(keys) - len(CONTEXT_TAGS)  # the legacy tags reuse the context's
