"""The relay's journal: an append-only file of JSON lines, fsynced, so that no accepted event is
lost across a restart (at least once) and no delivery is accepted twice.

`{"op": "accept", "id", "stamp", "event", "data", "received"}` is written before the relay
answers 2xx; `{"op": "done", "id", "result"}` once the event was dispatched, dropped as the
tool's own, or given up. On start the accepted events without a `done` are queued again; the
file is then rewritten with those and with the entries still inside the replay window."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow_gitops.relay.own import Event


@dataclass(frozen=True)
class Entry:
    """An accepted delivery as the journal holds it."""

    event: Event
    stamp: int  # MLflow's X-MLflow-Timestamp
    done: str | None = None  # dispatched | own | failed


class Journal:
    """Appends under a lock; every append is on disk (fsync) before it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def accept(self, event: Event, stamp: int) -> None:
        self._append(
            {
                "op": "accept",
                "id": event.delivery_id,
                "stamp": stamp,
                "event": event.event,
                "data": dict(event.data),
                "received": event.received,
            }
        )

    def done(self, delivery_id: str, result: str) -> None:
        self._append({"op": "done", "id": delivery_id, "result": result})

    def _append(self, line: dict[str, Any]) -> None:
        text = json.dumps(line, separators=(",", ":"), sort_keys=True) + "\n"
        with self._lock:
            self._file.write(text)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            self._file.close()


def replay(path: Path) -> list[Entry]:
    """Every accepted delivery in the journal, oldest first, with its outcome if it has one.
    A last line cut short by a crash (never answered 2xx) is ignored."""
    if not path.exists():
        return []
    entries: dict[str, Entry] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if line.get("op") == "accept":
            event = Event(line["id"], line["event"], line["data"], float(line["received"]))
            entries.setdefault(line["id"], Entry(event, int(line["stamp"])))
        elif line.get("op") == "done" and line.get("id") in entries:
            old = entries[line["id"]]
            entries[line["id"]] = Entry(old.event, old.stamp, str(line.get("result")))
    return list(entries.values())


def compact(path: Path, entries: list[Entry], keep_after: float) -> None:
    """Rewrite the journal with the pending entries and those received after `keep_after`
    (replay refusal and the tool's recent records need them), atomically."""
    kept = [e for e in entries if e.done is None or e.event.received >= keep_after]
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as out:
        for e in kept:
            accept = {
                "op": "accept",
                "id": e.event.delivery_id,
                "stamp": e.stamp,
                "event": e.event.event,
                "data": dict(e.event.data),
                "received": e.event.received,
            }
            out.write(json.dumps(accept, separators=(",", ":"), sort_keys=True) + "\n")
            if e.done is not None:
                done = {"op": "done", "id": e.event.delivery_id, "result": e.done}
                out.write(json.dumps(done, separators=(",", ":"), sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
