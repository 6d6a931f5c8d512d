"""The audit record of an apply (one run per apply, record/run.py's formats), sequenced once over a
backend's primitives: open the run before any change, write each model's changes and the
documents at the end, and read back the runs that touched a model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlflow_gitops.record import CHANGES_ARTIFACT, GATES_ARTIFACT, RESULT_TAG
from mlflow_gitops.record.run import (
    AuditRun,
    RecordFinish,
    RecordStart,
    bucket_tag,
    changes_document,
    changes_from_document,
    context_from_tags,
    decode_bucket,
    encode_buckets,
    start_tags,
)


@dataclass(frozen=True)
class StoredRun:
    """An audit run as the backend holds it: its tags undecoded."""

    run_id: str
    started_at: int  # milliseconds since the epoch
    status: str
    tags: Mapping[str, str] = field(default_factory=dict)


class RecordStore(Protocol):
    """What a backend implements for the audit record; each method raises RegistryError."""

    def open_run(self, name: str, started_at_ms: int, tags: Mapping[str, str]) -> str:
        """Create a run with these tags in the audit experiment (created if absent); its id."""
        ...

    def log_run_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def log_documents(self, run_id: str, documents: Mapping[str, Any]) -> None:
        """Each document as a JSON file of the run, under its name."""
        ...

    def end_run(self, run_id: str, ok: bool) -> None: ...

    def stored_runs(self, names: Sequence[str]) -> Mapping[str, Sequence[StoredRun]]:
        """The runs that may have touched each model, oldest first (a superset is fine)."""
        ...

    def read_document(self, run_id: str, name: str) -> Any:
        """A JSON document of the run, parsed."""
        ...


def start_record(store: RecordStore, start: RecordStart) -> str:
    """Open the audit run with its context and one tag per model it may touch, so the run is
    found by `history` even if the apply is cut off before it finishes."""
    name = f"apply {start.started_at:%Y-%m-%d %H:%M:%S}"
    return store.open_run(name, int(start.started_at.timestamp() * 1000), start_tags(start))


def finish_record(store: RecordStore, run_id: str, finish: RecordFinish) -> None:
    """Each model's changes as its tag, changes.json and gates.json, then end the run."""
    tags = encode_buckets(finish.changes)
    tags[RESULT_TAG] = "applied" if finish.ok else "failed"
    store.log_run_tags(run_id, tags)
    store.log_documents(
        run_id,
        {CHANGES_ARTIFACT: changes_document(finish), GATES_ARTIFACT: {"gates": list(finish.gates)}},
    )
    store.end_run(run_id, finish.ok)


def read_records(store: RecordStore, names: Sequence[str]) -> dict[str, tuple[AuditRun, ...]]:
    """The audit runs that touched each model, oldest first."""
    out: dict[str, tuple[AuditRun, ...]] = dict.fromkeys(names, ())
    for name, runs in store.stored_runs(names).items():
        out[name] = tuple(r for r in (_audit_run(store, run, name) for run in runs) if r)
    return out


def _audit_run(store: RecordStore, run: StoredRun, name: str) -> AuditRun | None:
    touched, changes = decode_bucket(run.tags.get(bucket_tag(name), ""), name)
    if not touched:
        return None
    if changes is None:  # too many to fit in a tag: read them from the document
        changes = changes_from_document(store.read_document(run.run_id, CHANGES_ARTIFACT), name)
    return AuditRun(
        run_id=run.run_id,
        started_at=run.started_at,
        context=context_from_tags(run.tags),
        status=run.status,
        changes=changes,
    )
