"""The promotion history of a model, from the tool's annotations and, where they are missing, from
the registry's own timestamps. Pure: values in, events and strings out."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from mlflow_gitops.observed import ModelState, VersionState, split_history
from mlflow_gitops.render.markdown import escape

_LINE = re.compile(r"^- (?P<date>\d{4}-\d{2}-\d{2}): (?P<what>.*?)(?: \((?P<details>[^()]*)\))?$")
_MOVE = re.compile(r"^(?P<before>\w+) -> (?P<after>\w+)$")


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
    source: str = "annotation"  # or "registry" (no annotation: the registry's timestamps)
    order: int = 0


def events(model: ModelState, version: int | None = None) -> list[Event]:
    """Every recorded change, newest first."""
    out: list[Event] = []
    for v in model.versions:
        if version is not None and v.version != version:
            continue
        found = _annotated(v)
        out.extend(found or _from_registry(v))
    return sorted(out, key=lambda e: (e.date, e.order, e.version), reverse=True)


def _annotated(v: VersionState) -> list[Event]:
    _, block = split_history(v.description)
    out = []
    for i, line in enumerate(block.splitlines()[1:]):
        match = _LINE.match(line.strip())
        if match is None:
            continue
        what, details = match["what"], match["details"] or ""
        move = _MOVE.match(what)
        commit, pr, actor = _details(details)
        gate = None
        if move:
            gate = _gate_verdict(v, move["after"])
        out.append(
            Event(
                date=match["date"],
                version=v.version,
                change=what if not details else f"{what} ({details})",
                before=move["before"] if move else None,
                after=move["after"] if move else None,
                gate=gate,
                order=i,
                commit=commit,
                pr=pr,
                actor=actor,
            )
        )
    return out


def _details(details: str) -> tuple[str | None, int | None, str | None]:
    """(commit, pr, actor) from `commit 1a2b3c4, PR #12, by alice`."""
    commit = pr = actor = None
    for part in (p.strip() for p in details.split(",")):
        if part.startswith("commit "):
            commit = part[len("commit ") :]
        elif part.startswith("PR #") and part[4:].isdigit():
            pr = int(part[4:])
        elif part.startswith("by "):
            actor = part[3:]
    return commit, pr, actor


def _gate_verdict(v: VersionState, stage: str) -> str | None:
    raw = v.tags.get(f"mlflow_gitops.gate.{stage}")
    if not raw:
        return None
    try:
        return str(json.loads(raw).get("verdict"))
    except ValueError:
        return None


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _from_registry(v: VersionState) -> list[Event]:
    out = [
        Event(date=_date(v.created_at), version=v.version, change="registered", source="registry")
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
            )
        )
    return out


def previous_holder(model: ModelState, stage: str = "Production") -> int | None:
    """The version that held the stage before the current holders (for rollback)."""
    current = {v.version for v in model.versions if v.stage == stage}
    for event in events(model):
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
        what = f"{e.before} -> {e.after}" if e.before and e.after else e.change
        lines.append(f"  {e.date}  v{e.version:<4} {what}" + (f"  ({who})" if who else ""))
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
        what = f"{e.before} → {e.after}" if e.before and e.after else escape(e.change)
        rows.append(
            f"| {e.date} | v{e.version} | {what} | {escape(e.commit or '')} | "
            f"{'#' + str(e.pr) if e.pr is not None else ''} | {escape(e.actor or '')} | {e.gate or ''} |"
        )
    return "\n".join(rows) + "\n"


def render_json(name: str, found: list[Event]) -> str:
    """schema_version 1: the events as objects."""
    data = {"schema_version": 1, "model": name, "events": [asdict(e) for e in found]}
    return json.dumps(data, indent=2) + "\n"
