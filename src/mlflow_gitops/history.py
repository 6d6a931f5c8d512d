"""The promotion history of a model: from the audit record (one MLflow run per apply), else from the
history blocks the tool writes into descriptions, else from the registry's own timestamps. Pure:
values in, events and strings out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.record import AuditRun, read_history, read_move, recorded_verdict
from mlflow_gitops.render.markdown import escape


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


def render_text(name: str, found: list[Event]) -> str:
    """One line per event, newest first."""
    if not found:
        return f"{name}: no history recorded\n"
    lines = [f"{name}: history, newest first"]
    for e in found:
        who = ", ".join(
            x
            for x in (
                f"commit {e.commit}" if e.commit else "",
                f"PR #{e.pr}" if e.pr is not None else "",
                f"by {e.actor}" if e.actor else "",
                f"gate {e.gate}" if e.gate else "",
            )
            if x
        )
        lines.append(f"  {_when(e)}  v{e.version:<4} {e.change}" + (f"  ({who})" if who else ""))
    return "\n".join(lines) + "\n"


def render_markdown(name: str, found: list[Event]) -> str:
    """A table, newest first."""
    rows = [
        f"### History of {escape(name)}",
        "",
        "| when | version | change | commit | PR | by | gate |",
    ]
    rows.append("|---|---|---|---|---|---|---|")
    for e in found:
        what = escape(e.change, 120)
        rows.append(
            f"| {_when(e)} | v{e.version} | {what} | {escape(e.commit or '')} | "
            f"{'#' + str(e.pr) if e.pr is not None else ''} | {escape(e.actor or '')} | {e.gate or ''} |"
        )
    return "\n".join(rows) + "\n"


def _when(e: Event) -> str:
    """`2026-11-27 14:03` when the time is known, else the date."""
    return e.time[:16].replace("T", " ") if "T" in e.time else e.date


def render_json(name: str, found: list[Event]) -> str:
    """schema_version 1: the events as objects."""
    data = {"schema_version": 1, "model": name, "events": [asdict(e) for e in found]}
    return json.dumps(data, indent=2) + "\n"
