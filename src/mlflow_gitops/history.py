"""The promotion history of a model: from the audit record (one MLflow run per apply), else from the
history blocks the tool writes into descriptions, else from the registry's own timestamps. Pure:
values in, events out (render/ shows them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.record import read_history, read_move, recorded_verdict
from mlflow_gitops.record.run import AuditRun


@dataclass(frozen=True)
class Event:
    """One change of one version."""

    date: str
    version: int
    change: str
    before: str | None = None  # stages, for transitions
    after: str | None = None
    commit: str | None = None
    pr: int | None = None
    actor: str | None = None
    gate: str | None = None  # the recorded gate verdict for the stage entered
    source: str = "annotation"  # "record" (audit run), "annotation" (history block), "registry"
    order: int = 0
    time: str = ""  # UTC, ISO 8601 to the millisecond where known (else the date)
    audit_run: str | None = None


def events(
    model: ModelState, version: int | None = None, runs: Sequence[AuditRun] = ()
) -> list[Event]:
    """Every recorded change, newest first (by time, then by order within one apply). Per version:
    the audit record when it has the version, else the history block in its description, else
    the registry's own timestamps."""
    recorded = _recorded(model, runs)
    out: list[Event] = []
    for v in model.versions:
        if version is not None and v.version != version:
            continue
        out.extend(recorded.get(v.version) or _annotated(v) or _from_registry(v))
    return sorted(out, key=lambda e: (e.time or e.date, e.order, e.version), reverse=True)


def _recorded(model: ModelState, runs: Sequence[AuditRun]) -> dict[int, list[Event]]:
    out: dict[int, list[Event]] = {}
    for run in runs:
        when = datetime.fromtimestamp(run.started_at / 1000, tz=UTC)
        for i, c in enumerate(run.changes):
            v = model.version(c.version)
            if v is None:
                continue
            move = read_move(c.what)
            out.setdefault(c.version, []).append(
                Event(
                    date=when.strftime("%Y-%m-%d"),
                    version=c.version,
                    change=f"{c.what} ({c.note})" if c.note else c.what,
                    before=move[0] if move else None,
                    after=move[1] if move else None,
                    commit=run.context.short_commit,
                    pr=run.context.pr,
                    actor=run.context.actor,
                    gate=recorded_verdict(v.tags, move[1]) if move else None,
                    source="record",
                    order=i,
                    time=when.isoformat(timespec="milliseconds"),
                    audit_run=run.run_id,
                )
            )
    return out


def _annotated(v: VersionState) -> list[Event]:
    out = []
    for i, line in enumerate(read_history(v.description)):
        move = read_move(line.what)
        out.append(
            Event(
                date=line.date,
                version=v.version,
                change=f"{line.what} ({line.note})" if line.note else line.what,
                before=move[0] if move else None,
                after=move[1] if move else None,
                gate=recorded_verdict(v.tags, move[1]) if move else None,
                order=i,
                commit=line.commit,
                pr=line.pr,
                actor=line.actor,
            )
        )
    return out


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def _from_registry(v: VersionState) -> list[Event]:
    out = [
        Event(
            date=_date(v.created_at),
            version=v.version,
            change="registered",
            source="registry",
            time=_time(v.created_at),
        )
    ]
    if v.stage != "None":
        out.append(
            Event(
                date=_date(v.updated_at or v.created_at),
                version=v.version,
                change=f"in {v.stage} (last update; no annotation records the transition)",
                after=v.stage,
                source="registry",
                order=1,
                time=_time(v.updated_at or v.created_at),
            )
        )
    return out


def previous_holder(
    model: ModelState, stage: str = "Production", runs: Sequence[AuditRun] = ()
) -> int | None:
    """The version that held the stage before the current holders (for rollback)."""
    current = {v.version for v in model.versions if v.stage == stage}
    for event in events(model, None, runs):
        if event.after == stage and event.version not in current:
            return event.version
    return None
