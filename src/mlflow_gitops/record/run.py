"""The audit run of each apply, as the tool writes it into MLflow: one run per apply in the
experiment AUDIT_EXPERIMENT, with kind, result and context run tags (start_tags, context_tags /
context_from_tags), each touched model's changes in one of 64 bucket tags keyed by a digest of
the name (encode_buckets / decode_bucket), and the changes.json artifact (changes_document /
changes_from_document). Pure, like the rest of record/."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlflow_gitops.audit import AuditContext
from mlflow_gitops.record import (
    BUCKETS,
    CONTEXT_TAGS,
    KIND_TAG,
    MAX_RUN_TAG,
    MODEL_TAG_PREFIX,
    RESULT_TAG,
    digest,
    history_line,
    join_history,
    split_history,
)

# --- the audit run of each apply ---------------------------------------------------------------


@dataclass(frozen=True)
class RecordedChange:
    """One change to one version, as its history line shows it (without date and context)."""

    version: int
    what: str  # "Staging -> Production", "alias champion set"
    note: str = ""  # "replaced by version 3", "was version 2"


@dataclass(frozen=True)
class AuditRun:
    """One apply as the audit experiment holds it, seen from one model."""

    run_id: str
    started_at: int  # ms since the epoch
    context: AuditContext = field(default_factory=AuditContext)
    status: str = "FINISHED"
    changes: tuple[RecordedChange, ...] = ()


@dataclass(frozen=True)
class RecordStart:
    """What an audit run holds from its start: who applies, and which models it may touch."""

    context: AuditContext
    started_at: datetime
    models: tuple[str, ...]


@dataclass(frozen=True)
class RecordFinish:
    """What an audit run holds at its end: each model's changes, every step, the gate evidence."""

    ok: bool
    changes: Mapping[str, tuple[RecordedChange, ...]]
    steps: tuple[Mapping[str, str], ...] = ()
    gates: tuple[Mapping[str, Any], ...] = ()


def model_key(name: str) -> str:
    """How the audit run's tags name a model: a digest (tag keys and filters cannot hold every
    character a model name can)."""
    return digest(name)


def bucket_tag(name: str) -> str:
    """The audit run's tag that holds the model: one of BUCKETS, so an apply of 1,000 models
    writes at most 64 tags, and a search returns runs that carry at most 64 tags each."""
    return f"{MODEL_TAG_PREFIX}{int(model_key(name), 16) % BUCKETS:02d}"


def model_filter(name: str) -> str:
    """search_runs filter for the audit runs that touched the model (MLflow 2.x and 3): the
    model's digest inside its bucket tag (hex digits only: nothing to escape)."""
    return f"tags.`{bucket_tag(name)}` LIKE '%\"{model_key(name)}\"%'"


def start_tags(start: RecordStart) -> dict[str, str]:
    """The run's tags at start: kind, context, and every model it may touch (no changes yet)."""
    tags = {KIND_TAG: "apply", RESULT_TAG: "running"}
    tags.update(context_tags(start.context))
    tags.update(encode_buckets(dict.fromkeys(start.models, ())))
    return tags


def context_tags(context: AuditContext) -> dict[str, str]:
    """The context fields that are known, as run tags."""
    values = {
        "commit": context.commit,
        "pr": str(context.pr) if context.pr is not None else None,
        "actor": context.actor,
        "run_url": context.run_url,
    }
    return {CONTEXT_TAGS[k]: v for k, v in values.items() if v}


def context_from_tags(tags: Mapping[str, str]) -> AuditContext:
    """The apply's context back from its run tags."""
    pr = tags.get(CONTEXT_TAGS["pr"], "")
    return AuditContext(
        commit=tags.get(CONTEXT_TAGS["commit"]) or None,
        pr=int(pr) if pr.isdigit() else None,
        actor=tags.get(CONTEXT_TAGS["actor"]) or None,
        run_url=tags.get(CONTEXT_TAGS["run_url"]) or None,
    )


def encode_buckets(changes: Mapping[str, Sequence[RecordedChange]]) -> dict[str, str]:
    """Each model's changes in its bucket tag, `{"<digest>": {"model": name, "changes": [...]}}`;
    a model whose changes do not fit is listed as `"<digest>": 0` (they are in changes.json)."""
    buckets: dict[str, dict[str, Any]] = {}
    for name in sorted(changes):
        rows = [[c.version, c.what, c.note] for c in changes[name]]
        bucket = buckets.setdefault(bucket_tag(name), {})
        bucket[model_key(name)] = {"model": name, "changes": rows}
        if len(_dump(bucket)) > MAX_RUN_TAG:
            bucket[model_key(name)] = 0
    return {key: _dump(value) for key, value in sorted(buckets.items())}


def decode_bucket(value: str, name: str) -> tuple[bool, tuple[RecordedChange, ...] | None]:
    """(the run touched the model, its changes or None when they are in changes.json)."""
    try:
        data = json.loads(value)
    except ValueError:
        return False, ()
    entry = data.get(model_key(name)) if isinstance(data, dict) else None
    if entry == 0:
        return True, None
    if not isinstance(entry, dict) or entry.get("model") != name:
        return False, ()  # not in this run, or another name with the same digest
    return True, _changes(entry.get("changes"))


def _dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _changes(rows: object) -> tuple[RecordedChange, ...]:
    out = []
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, list) and len(row) == 3 and isinstance(row[0], int):
            out.append(RecordedChange(row[0], str(row[1]), str(row[2])))
    return tuple(out)


def changes_document(finish: RecordFinish) -> dict[str, Any]:
    """The changes.json artifact: every step with its status, and each model's changes."""
    return {
        "schema_version": 1,
        "ok": finish.ok,
        "steps": [dict(s) for s in finish.steps],
        "models": {
            name: [[c.version, c.what, c.note] for c in changes]
            for name, changes in sorted(finish.changes.items())
        },
    }


def changes_from_document(doc: Mapping[str, Any], name: str) -> tuple[RecordedChange, ...]:
    """One model's changes from a changes.json artifact."""
    models = doc.get("models")
    return _changes(models.get(name)) if isinstance(models, dict) else ()


def history_lines(runs: Sequence[AuditRun], version: int) -> list[str]:
    """The version's history lines, oldest first, rebuilt from the audit runs."""
    out = []
    for run in sorted(runs, key=lambda r: (r.started_at, r.run_id)):
        day = datetime.fromtimestamp(run.started_at / 1000, tz=UTC).strftime("%Y-%m-%d")
        out += [
            history_line(day, c.what, c.note, run.context)
            for c in run.changes
            if c.version == version
        ]
    return out


def rebuild_block(runs: Sequence[AuditRun], version: int) -> str:
    """The history block the tool wrote on the version, rebuilt from the record ("" if none)."""
    lines = history_lines(runs, version)
    return split_history(join_history("", "", lines))[1] if lines else ""
