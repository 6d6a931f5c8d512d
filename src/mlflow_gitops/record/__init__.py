"""Everything the tool writes into MLflow, in one place: each name, and beside it the encoder and
the decoder of its value. Pure: no MLflow import, values and strings only.

What the tool writes, and where:

- on each touched version and model, one JSON tag `mlflow_gitops.record` (RECORD_TAG): the whole
  annotation of the last apply that touched it (version_record, model_record / read_record);
  earlier releases wrote one tag per field (LEGACY_TAGS), read as a fallback and deleted;
- in each touched version's description, the history block: HISTORY_MARKER, then one line per
  change, `- 2026-11-27: Staging -> Production (replaced by version 3, commit 1a2b3c4, PR #12, by
  alice)` (history_line / read_history, join_history / split_history);
- the gate results on the candidate version, `mlflow_gitops.gate.<target>` (gate_tag,
  gate_record / read_gate_record);
- a version's metrics on one evaluation data set, `mlflow_gitops.scores.<digest>` (scores_tag,
  encode_scores / decode_scores), so that a later gate reads them instead of scoring it again;
- the applied aliases, inside the model's record (encode_aliases / decode_aliases);
- a one-off token on a version while it is registered (REGISTRATION_TAG);
- the apply lock: a registered model LOCK_MODEL with its lock tags;
- one MLflow run per apply in the experiment AUDIT_EXPERIMENT: kind, result and context run tags
  (start_tags, context_tags / context_from_tags), each touched model's changes in one of 64
  bucket tags `mlflow_gitops.models.NN` keyed by a digest of the name (encode_buckets /
  decode_bucket), so `history` finds the runs of one model with one filtered search, and the
  changes.json artifact (changes_document / changes_from_document). A hand edit of a description
  or a version tag cannot reach that run (record/run.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlflow_gitops.audit import AuditContext
from mlflow_gitops.settings import is_databricks

# --- names -----------------------------------------------------------------------------------

TOOL_TAG_PREFIX = "mlflow_gitops."  # every tag key the tool writes; reserved in registry.yaml
RECORD_TAG = TOOL_TAG_PREFIX + "record"  # the whole annotation of a version or model, as JSON
GATE_TAG_PREFIX = TOOL_TAG_PREFIX + "gate."  # + target: a version's gate results for that target
SCORES_TAG_PREFIX = TOOL_TAG_PREFIX + "scores."  # + digest of (data location, metrics): its scores
# a one-off token on a version while it is registered: finds the copies a retried POST made
REGISTRATION_TAG = TOOL_TAG_PREFIX + "registration"
# the apply lock: a registered model that exists while an apply runs, and its tags
LOCK_MODEL = "mlflow-gitops.apply-lock"
LOCK_TAG = TOOL_TAG_PREFIX + "lock"  # the holder's random token
HOLDER_TAG = TOOL_TAG_PREFIX + "holder"  # who applies, and since when (for the waiting side)
LEASE_TAG = TOOL_TAG_PREFIX + "lease"  # seconds since the epoch, as text: when the lease ends
USER_TAG = TOOL_TAG_PREFIX + "holder_user"  # the MLflow user who made it (basic-auth: may delete)
PROBE_TAG = TOOL_TAG_PREFIX + "permission-probe"  # never set: deleting it asks for EDIT
# the audit experiment: one run per apply (its name is configurable per registry; this is the
# default, under WORKSPACE_FOLDER on Databricks: default_audit_experiment)
AUDIT_EXPERIMENT = "mlflow-gitops-audit"
WORKSPACE_FOLDER = "/Shared"  # a Databricks workspace names experiments by workspace path
MODEL_TAG_PREFIX = TOOL_TAG_PREFIX + "models."  # on an audit run: the models it touched, bucketed
BUCKETS = 64
KIND_TAG = TOOL_TAG_PREFIX + "kind"
RESULT_TAG = TOOL_TAG_PREFIX + "result"
CONTEXT_TAGS = {
    "commit": TOOL_TAG_PREFIX + "commit",
    "pr": TOOL_TAG_PREFIX + "pr",
    "actor": TOOL_TAG_PREFIX + "actor",
    "run_url": TOOL_TAG_PREFIX + "run_url",
}
CHANGES_ARTIFACT = "changes.json"
GATES_ARTIFACT = "gates.json"
# provenance on a version copied from another registry (and on the copy's run)
COPIED_FROM = TOOL_TAG_PREFIX + "copied_from."
COPY_REGISTRY_TAG = COPIED_FROM + "registry"  # registry_identity() of the source: no user
COPY_MODEL_TAG = COPIED_FROM + "model"
COPY_VERSION_TAG = COPIED_FROM + "version"
COPY_RUN_TAG = COPIED_FROM + "run_id"
COPY_EXPERIMENT_TAG = (
    COPIED_FROM + "experiment_id"
)  # on the copy's run: the source run's experiment
# on the copy's run: where the model is inside it, so an apply interrupted before the version was
# registered leaves a run the next apply can register from (runs written before this tag existed
# are never reused)
COPY_MODEL_PATH_TAG = COPIED_FROM + "model_path"
COPIES_EXPERIMENT = "mlflow-gitops-copies"  # the destination's runs that hold copied artifacts


def workspace_experiment(name: str, tracking_uri: str) -> str:
    """An experiment name the tracking server takes: a Databricks workspace names experiments by
    absolute workspace path (`/Shared/mlflow-gitops-audit`), any other server by plain name."""
    if is_databricks(tracking_uri) and not name.startswith("/"):
        return f"{WORKSPACE_FOLDER}/{name}"
    return name


# the copies' experiment in a Databricks workspace, whose experiments are named by workspace path
COPIES_WORKSPACE_EXPERIMENT = workspace_experiment(COPIES_EXPERIMENT, "databricks")


def default_audit_experiment(tracking_uri: str) -> str:
    """The audit experiment of a registry whose file names none."""
    return workspace_experiment(AUDIT_EXPERIMENT, tracking_uri)


# the one-field-per-tag annotations of earlier releases: read as a fallback, deleted when the
# version or model is next annotated (a record never mixes two applies)
LEGACY_TAGS = {
    "changed_at": TOOL_TAG_PREFIX + "changed_at",
    "change": TOOL_TAG_PREFIX + "change",
    **CONTEXT_TAGS,
    "stage_since": TOOL_TAG_PREFIX + "stage_since",
    "aliases": TOOL_TAG_PREFIX + "aliases",
}

# --- MLflow's limits ---------------------------------------------------------------------------

# the SQL stores' columns, varchar(5000) on PostgreSQL and MySQL: descriptions, and tag values of
# models and versions; run tag values hold 8,000 characters on MLflow 3, 5,000 on older stores
MAX_DESCRIPTION = 5000
MAX_TAG_VALUE = 5000
MAX_RUN_TAG = 5000
MAX_CHANGE_SUMMARY = 2000  # the record's `change` field; the history block has every change

# --- the history block in a version's description -----------------------------------------------

HISTORY_MARKER = "<!-- mlflow-gitops history -->"
RESTORED = "history block restored from the audit record"


@dataclass(frozen=True)
class HistoryLine:
    """One line of a history block, as `history` reads it back."""

    date: str  # YYYY-MM-DD
    what: str  # "Staging -> Production", "alias champion set"
    note: str = ""  # "replaced by version 3", "was version 2"
    commit: str | None = None  # the first 7 characters
    pr: int | None = None
    actor: str | None = None


def history_line(day: str, what: str, note: str, context: AuditContext) -> str:
    """`- 2026-11-27: Staging -> Production (replaced by version 3, commit 1a2b3c4, PR #12, by
    alice)`: one line of the block."""
    parts = [p for p in (note, context.describe()) if p]
    return f"- {day}: {what} ({', '.join(parts)})" if parts else f"- {day}: {what}"


_LINE = re.compile(r"^- (?P<date>\d{4}-\d{2}-\d{2}): (?P<what>.*?)(?: \((?P<details>[^()]*)\))?$")


def read_history_line(text: str) -> HistoryLine | None:
    """A history line back (None for a line the tool did not write)."""
    match = _LINE.match(text.strip())
    if match is None:
        return None
    commit = pr = actor = None
    rest = []
    for part in (p.strip() for p in (match["details"] or "").split(",")):
        if part.startswith("commit "):
            commit = part[len("commit ") :]
        elif part.startswith("PR #") and part[4:].isdigit():
            pr = int(part[4:])
        elif part.startswith("by "):
            actor = part[3:]
        elif part:
            rest.append(part)
    return HistoryLine(match["date"], match["what"], ", ".join(rest), commit, pr, actor)


def split_history(description: str | None) -> tuple[str, str]:
    """(user text, history block); the user's text with trailing whitespace removed."""
    text = description or ""
    head, marker, tail = text.partition(HISTORY_MARKER)
    return head.rstrip(), (marker + tail) if marker else ""


def join_history(user_text: str, history: str, new_lines: Sequence[str] = ()) -> str:
    """The user's text, then the history block with any new lines (history_line) appended; the
    oldest history lines give way so the whole stays within MLflow's 5,000 characters (the
    user's text never)."""
    block = history or (HISTORY_MARKER if new_lines else "")
    if new_lines:
        block = block.rstrip("\n") + "\n" + "\n".join(new_lines)
    if not block:
        return user_text
    lines = block.split("\n")[1:]
    room = MAX_DESCRIPTION - len(user_text) - 2 - len(HISTORY_MARKER)
    while lines and sum(len(line) + 1 for line in lines) > room:
        lines.pop(0)
    if not lines:
        return user_text
    block = "\n".join([HISTORY_MARKER, *lines])
    return f"{user_text}\n\n{block}" if user_text else block


def read_history(description: str | None) -> list[HistoryLine]:
    """The lines of the description's history block that the tool wrote, oldest first."""
    found = (read_history_line(text) for text in split_history(description)[1].splitlines()[1:])
    return [h for h in found if h is not None]


# --- the record tag on each touched version and model -------------------------------------------


def digest(text: str) -> str:
    """A short fingerprint of a description part, kept in the version's record."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def version_record(
    context: AuditContext,
    changed_at: str,
    changes: Sequence[str],
    *,
    stage_since: str | None,
    audit_run: str | None,
    description: str,
) -> str:
    """The complete annotation of a version for one apply: every field, null when unknown, so no
    field of an earlier apply survives; and fingerprints of the description as written. A stage
    transition, when there is one, comes first among the changes (last_move reads it)."""
    user, block = split_history(description)
    data = {
        "changed_at": changed_at,
        "change": "; ".join(changes)[:MAX_CHANGE_SUMMARY],
        **_context(context),
        "stage_since": stage_since,
        "audit_run": audit_run,
        "text": digest(user),
        "history": digest(block),
    }
    return json.dumps(data, separators=(",", ":"))


def model_record(
    context: AuditContext,
    changed_at: str,
    *,
    aliases: Mapping[str, int] | None,
    audit_run: str | None,
) -> str:
    """The complete annotation of a registered model for one apply: with the aliases as the
    tool left them (None: it never set one)."""
    data = {
        "changed_at": changed_at,
        **_context(context),
        "aliases": encode_aliases(aliases) if aliases is not None else None,
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


def encode_aliases(aliases: Mapping[str, int]) -> str:
    """`champion=3,challenger=4`, sorted: the aliases as an apply left them."""
    return ",".join(f"{alias}={number}" for alias, number in sorted(aliases.items()))


def decode_aliases(value: object) -> dict[str, int] | None:
    """The aliases back from the record (None: no apply recorded any)."""
    if not isinstance(value, str) or not value:
        return None
    out: dict[str, int] = {}
    for pair in value.split(","):
        alias, _, number = pair.partition("=")
        if number.isdigit():
            out[alias.strip()] = int(number)
    return out


def recorded_aliases(tags: Mapping[str, str]) -> dict[str, int] | None:
    """The aliases the tool last applied to a model, from its tags."""
    return decode_aliases(read_record(tags).get("aliases"))


_MOVE = re.compile(r"^(?P<before>\w+) -> (?P<after>\w+)$")


def read_move(what: str) -> tuple[str, str] | None:
    """(before, after) of a change that is a stage transition, `Staging -> Production`."""
    match = _MOVE.match(what)
    return (match["before"], match["after"]) if match else None


def last_move(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """The stage transition of the last apply that touched the version, if it moved it (the
    record's changes start with it)."""
    return read_move(str(read_record(tags).get("change") or "").split("; ")[0])


def history_altered(description: str, tags: Mapping[str, str]) -> bool:
    """The history block differs from the one the tool last wrote (removed or edited by hand)."""
    recorded = read_record(tags).get("history")
    return isinstance(recorded, str) and digest(split_history(description)[1]) != recorded


def text_altered(user_text: str, tags: Mapping[str, str]) -> bool:
    """The user's part of the description differs from what the tool last wrote."""
    recorded = read_record(tags).get("text")
    return isinstance(recorded, str) and digest(user_text) != recorded


# --- gate results on the candidate version ------------------------------------------------------


@dataclass(frozen=True)
class GateRecord:
    """The gate results for one target, cached with a digest of everything they depend on."""

    inputs: str
    verdict: str  # "pass" or "fail"
    at: str  # ISO 8601, seconds
    results: tuple[Mapping[str, Any], ...] = ()


def gate_tag(target: str) -> str:
    """`mlflow_gitops.gate.Production`, `mlflow_gitops.gate.alias:champion`."""
    return GATE_TAG_PREFIX + target


def encode_gate_record(record: GateRecord) -> str:
    """The tag value: compact JSON."""
    data = {
        "inputs": record.inputs,
        "verdict": record.verdict,
        "at": record.at,
        "results": [dict(r) for r in record.results],
    }
    return json.dumps(data, separators=(",", ":"))


def decode_gate_record(raw: str | None) -> GateRecord | None:
    """The record back; None when absent or not one the tool wrote."""
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        return None
    if not isinstance(data.get("inputs"), str):
        return None  # without the digest of its inputs a record can never be reused
    return GateRecord(
        inputs=data["inputs"],
        verdict=str(data.get("verdict", "")),
        at=str(data.get("at", "")),
        results=tuple(r for r in data["results"] if isinstance(r, dict)),
    )


def recorded_verdict(tags: Mapping[str, str], target: str) -> str | None:
    """The verdict of the gates the version last passed or failed for that target."""
    raw = tags.get(gate_tag(target))
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    return str(data.get("verdict")) if isinstance(data, dict) else None


# --- a version's metrics on one evaluation data set ----------------------------------------------


@dataclass(frozen=True)
class Scores:
    """A version's metrics on one data set, as one evaluation computed them: `key` digests what
    they are a function of (the version's artifacts, the data's identity, the prepare hook, the
    metric definitions); `inputs` names those inputs for the reader, `at` says when."""

    key: str
    rows: int
    metrics: Mapping[str, float]
    at: str  # ISO 8601, seconds
    inputs: Mapping[str, str] = field(default_factory=dict)  # data, hook: short digests
    latency_ms: Mapping[str, float] = field(default_factory=dict)  # p50_ms, p95_ms when timed
    latency_rows: int = 0  # the batch size the latencies were timed on (0: not timed)


def scores_tag(slot: str) -> str:
    """`mlflow_gitops.scores.<slot>`: one tag per data set and metric set, so a replaced object
    overwrites its stale scores instead of adding a tag."""
    return SCORES_TAG_PREFIX + slot


def encode_scores(scores: Scores) -> str:
    """The tag value: compact JSON (floats as repr: they read back to the same bits)."""
    data: dict[str, Any] = {
        "key": scores.key,
        "rows": scores.rows,
        "metrics": dict(sorted(scores.metrics.items())),
        "at": scores.at,
        "inputs": dict(sorted(scores.inputs.items())),
    }
    if scores.latency_rows:
        data["latency_ms"] = dict(sorted(scores.latency_ms.items()))
        data["latency_rows"] = scores.latency_rows
    return json.dumps(data, separators=(",", ":"))


def decode_scores(raw: str | None) -> Scores | None:
    """The scores back; None when absent or not a value the tool wrote."""
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        return None
    metrics, latency = data.get("metrics"), data.get("latency_ms") or {}
    rows, latency_rows = data.get("rows"), data.get("latency_rows") or 0
    if not isinstance(metrics, dict) or not isinstance(latency, dict):
        return None
    if not isinstance(rows, int) or not isinstance(latency_rows, int):
        return None
    numbers = {**metrics, **latency}.values()
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
        return None
    inputs = data.get("inputs")
    inputs = inputs if isinstance(inputs, dict) else {}
    return Scores(
        key=data["key"],
        rows=rows,
        metrics={str(k): float(v) for k, v in metrics.items()},
        at=str(data.get("at", "")),
        inputs={str(k): str(v) for k, v in inputs.items()},
        latency_ms={str(k): float(v) for k, v in latency.items()},
        latency_rows=latency_rows,
    )


# --- provenance of a version copied from another registry -----------------------------------------


@dataclass(frozen=True, order=True)
class SourceRef:
    """A version of a registry, the registry named by its identity (never by credentials)."""

    registry: str  # settings.registry_identity(uri)
    model: str
    version: int

    def __str__(self) -> str:
        return f"{self.model}/{self.version} at {self.registry}"


def provenance_tags(ref: SourceRef, run_id: str | None) -> dict[str, str]:
    """The tags that tell a copy's origin."""
    tags = {COPY_REGISTRY_TAG: ref.registry, COPY_MODEL_TAG: ref.model}
    tags[COPY_VERSION_TAG] = str(ref.version)
    if run_id:
        tags[COPY_RUN_TAG] = run_id
    return tags


def provenance_run(tags: Mapping[str, str]) -> str | None:
    """The source run's id a copy's provenance records; None when it records none."""
    return tags.get(COPY_RUN_TAG) or None


def read_provenance(tags: Mapping[str, str]) -> SourceRef | None:
    """The version a copy was made from, read back from its provenance tags; None for no copy."""
    try:
        return SourceRef(tags[COPY_REGISTRY_TAG], tags[COPY_MODEL_TAG], int(tags[COPY_VERSION_TAG]))
    except (KeyError, ValueError):
        return None
