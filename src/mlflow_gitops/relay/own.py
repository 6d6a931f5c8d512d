"""Which registry events mlflow-gitops caused itself, so that its own applies start no drift run.

MLflow's events say nothing of who made them, so the relay recognises the tool by what it
writes (record.py): every tag whose key starts with `mlflow_gitops.` is the tool's; and at the end
of each model's apply the tool writes the record tag `mlflow_gitops.record` on every version it
touched, whose `change` lists what it did to that version (`alias champion`, `tag team`,
`registered from ...`, `alias old removed`). An event that such a record names, arriving within
the settle window before or after it, is the tool's; the others are a person's (or another
program's), dispatched once the window has passed without such a record. Pure: no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlflow_gitops.record import RECORD_TAG, TOOL_TAG_PREFIX


@dataclass(frozen=True)
class Event:
    """One accepted delivery: MLflow's `entity.action`, its data, and when the relay took it."""

    delivery_id: str
    event: str  # e.g. model_version_alias.created
    data: Mapping[str, Any]
    received: float

    @property
    def model(self) -> str:
        return str(self.data.get("name", ""))

    @property
    def version(self) -> str:
        return str(self.data.get("version", ""))


def tool_tag(event: Event) -> bool:
    """A tag the tool writes (record, gate results, provenance): its own, always."""
    return event.event.startswith("model_version_tag.") and str(
        event.data.get("key", "")
    ).startswith(TOOL_TAG_PREFIX)


@dataclass(frozen=True)
class Mark:
    """A record the tool wrote on a version: what it changed there, and when it was seen."""

    model: str
    version: str
    changes: tuple[str, ...]
    seen: float


def mark_of(event: Event) -> Mark | None:
    """The tool's record tag, read: the changes it lists on that version."""
    if event.event != "model_version_tag.set" or event.data.get("key") != RECORD_TAG:
        return None
    try:
        record = json.loads(str(event.data.get("value", "")))
    except ValueError:
        return None
    text = record.get("change") if isinstance(record, dict) else None
    changes = tuple(c.strip() for c in str(text or "").split(";") if c.strip())
    return Mark(event.model, event.version, changes, event.received)


def named_by(event: Event, mark: Mark) -> bool:
    """Whether the tool's record names this event as one of its own changes."""
    if mark.model != event.model:
        return False
    same_version = mark.version == event.version
    data = event.data
    match event.event:
        case "model_version_alias.created":
            return same_version and f"alias {data.get('alias')}" in mark.changes
        case "model_version_alias.deleted":  # the version it left is the one annotated
            return f"alias {data.get('alias')} removed" in mark.changes
        case "model_version_tag.set":
            return same_version and f"tag {data.get('key')}" in mark.changes
        case "model_version_tag.deleted":
            return same_version and f"tag {data.get('key')} deleted" in mark.changes
        case "model_version.created":
            return same_version and any(
                c.startswith(("registered from ", "copy ")) for c in mark.changes
            )
        case "registered_model.created":  # the tool annotates the versions it then registers
            return any(c.startswith(("registered from ", "copy ")) for c in mark.changes)
        case _:
            return False


@dataclass
class Marks:
    """The tool's records seen lately, kept for `keep` seconds."""

    keep: float
    marks: list[Mark] = field(default_factory=list)

    def add(self, mark: Mark) -> None:
        self.marks.append(mark)

    def names(self, event: Event, now: float) -> bool:
        """Whether a record seen within the window names the event (and forget old ones)."""
        self.marks = [m for m in self.marks if now - m.seen <= self.keep]
        return any(
            named_by(event, m) for m in self.marks if abs(m.seen - event.received) <= self.keep
        )


def dispatch_payload(event: Event) -> dict[str, Any]:
    """The repository_dispatch body: the model and the event (GitHub takes at most ten
    top-level keys in client_payload)."""
    payload: dict[str, Any] = {"model": event.model, "event": event.event}
    for key in ("version", "alias", "key"):
        if key in event.data:
            payload[key] = str(event.data[key])
    payload["delivery_id"] = event.delivery_id
    return {"event_type": DISPATCH_EVENT, "client_payload": payload}


DISPATCH_EVENT = "mlflow-registry-event"
