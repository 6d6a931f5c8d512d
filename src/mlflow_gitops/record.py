"""The durable record of applies, and the compact record on each touched version and model.

Every apply logs one MLflow run in the audit experiment: who, which commit, pull request and run
link as run tags, the changes applied and failed and the gate evidence as JSON artifacts, and each
touched model's changes in one of 64 bucket tags (`mlflow_gitops.models.NN`, keyed by a digest of
the name), so `history` finds the runs of one model with one filtered search. A hand edit of a description or
a version tag cannot reach that run. Pure: values and their encodings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlflow_gitops.audit import AuditContext
from mlflow_gitops.observed import HISTORY_MARKER, join_history, split_history

AUDIT_EXPERIMENT = "mlflow-gitops-audit"
RECORD_TAG = "mlflow_gitops.record"  # the whole annotation of a version or model, as JSON
MODEL_TAG_PREFIX = "mlflow_gitops.models."  # on an audit run: the models it touched, bucketed
BUCKETS = 64
KIND_TAG = "mlflow_gitops.kind"
RESULT_TAG = "mlflow_gitops.result"
CONTEXT_TAGS = {
    "commit": "mlflow_gitops.commit",
    "pr": "mlflow_gitops.pr",
    "actor": "mlflow_gitops.actor",
    "run_url": "mlflow_gitops.run_url",
}
# the one-field-per-tag annotations of earlier releases: read as a fallback, deleted when the
# version or model is next annotated (a record never mixes two applies)
LEGACY_TAGS = {
    "changed_at": "mlflow_gitops.changed_at",
    "change": "mlflow_gitops.change",
    **CONTEXT_TAGS,
    "stage_since": "mlflow_gitops.stage_since",
    "aliases": "mlflow_gitops.aliases",
}
# run tag values: 8,000 characters on MLflow 3, 5,000 on older SQL stores
MAX_RUN_TAG = 5000
CHANGES_ARTIFACT = "changes.json"
GATES_ARTIFACT = "gates.json"
RESTORED = "history block restored from the audit record"


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


def line(what: str, note: str, context: AuditContext) -> str:
    """`Staging -> Production (replaced by version 3, commit 1a2b3c4, PR #12, by alice)`."""
    parts = [p for p in (note, context.describe()) if p]
    return f"{what} ({', '.join(parts)})" if parts else what


def digest(text: str) -> str:
    """A short fingerprint of a description part, kept in the version's record."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    """The version's history lines (`YYYY-MM-DD: ...`), oldest first, rebuilt from the record."""
    out = []
    for run in sorted(runs, key=lambda r: (r.started_at, r.run_id)):
        day = datetime.fromtimestamp(run.started_at / 1000, tz=UTC).strftime("%Y-%m-%d")
        out += [
            f"{day}: {line(c.what, c.note, run.context)}"
            for c in run.changes
            if c.version == version
        ]
    return out


def rebuild_block(runs: Sequence[AuditRun], version: int) -> str:
    """The history block the tool wrote on the version, rebuilt from the record ("" if none)."""
    lines = history_lines(runs, version)
    return split_block(join_history("", "", lines)) if lines else ""


def split_block(text: str) -> str:
    """The history block of a description."""
    _, marker, tail = text.partition(HISTORY_MARKER)
    return marker + tail if marker else ""


def version_record(
    context: AuditContext,
    changed_at: str,
    change: str,
    *,
    stage_since: str | None,
    audit_run: str | None,
    description: str,
) -> str:
    """The complete annotation of a version for one apply: every field, null when unknown, so no
    field of an earlier apply survives; and fingerprints of the description as written."""
    user, block = split_history(description)
    data = {
        "changed_at": changed_at,
        "change": change,
        **_context(context),
        "stage_since": stage_since,
        "audit_run": audit_run,
        "text": digest(user),
        "history": digest(block),
    }
    return json.dumps(data, separators=(",", ":"))


def model_record(
    context: AuditContext, changed_at: str, *, aliases: str | None, audit_run: str | None
) -> str:
    """The complete annotation of a registered model for one apply."""
    data = {
        "changed_at": changed_at,
        **_context(context),
        "aliases": aliases,
        "audit_run": audit_run,
    }
    return json.dumps(data, separators=(",", ":"))


def _context(context: AuditContext) -> dict[str, Any]:
    return {
        "commit": context.commit,
        "pr": context.pr,
        "actor": context.actor,
        "run_url": context.run_url,
    }


def read_record(tags: Mapping[str, str]) -> dict[str, Any]:
    """The last annotation of a version or model: its record tag, else the legacy tags."""
    raw = tags.get(RECORD_TAG)
    if raw:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return data
    return {field: tags[key] for field, key in LEGACY_TAGS.items() if key in tags}


def history_altered(description: str, tags: Mapping[str, str]) -> bool:
    """The history block differs from the one the tool last wrote (removed or edited by hand)."""
    recorded = read_record(tags).get("history")
    return isinstance(recorded, str) and digest(split_history(description)[1]) != recorded


def text_altered(user_text: str, tags: Mapping[str, str]) -> bool:
    """The user's part of the description differs from what the tool last wrote."""
    recorded = read_record(tags).get("text")
    return isinstance(recorded, str) and digest(user_text) != recorded
