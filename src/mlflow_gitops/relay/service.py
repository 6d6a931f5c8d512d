"""The relay service: `POST /webhook` takes MLflow's signed deliveries, `GET /healthz` says how it
is; one worker thread dispatches each person-made event to GitHub once its settle window has
passed, retrying transient failures until the event's deadline. Everything it accepted is in the
journal first, so a restart loses nothing (at least once)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.relay.dispatch import DispatchFailed, send
from mlflow_gitops.relay.journal import Journal, compact, replay
from mlflow_gitops.relay.own import Event, Marks, dispatch_payload, mark_of, tool_tag
from mlflow_gitops.relay.signature import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TOLERANCE_S,
    Refused,
    verify,
)
from mlflow_gitops.secrets import register_secrets

log = logging.getLogger("mlflow_gitops.relay")

MAX_BODY = 1_048_576  # MLflow's registry payloads are a few kB; a tag value at most 8,000 chars
MAX_BACKOFF_S = 60.0
COMPACT_EVERY = 10_000  # outcomes between two rewrites of the journal: it never grows unbounded


@dataclass(frozen=True)
class Config:
    """How the relay runs; the secret and the token are never shown (repr hides them)."""

    repository: str  # OWNER/NAME
    secret: str = field(repr=False)
    token: str = field(repr=False)
    journal: Path
    host: str = "127.0.0.1"
    port: int = 8765
    api_url: str = "https://api.github.com"
    settle: float = 10.0  # how long an event waits for the tool's record before it is dispatched
    max_body: int = MAX_BODY
    max_queue: int = 1000
    retry_for: float = 3600.0  # how long a dispatch is retried before the event is given up
    tolerance: float = TOLERANCE_S
    timeout: float = 10.0  # of one request to GitHub


def config_from(
    environ: Mapping[str, str],
    *,
    repository: str | None,
    secret_env: str,
    journal: Path,
    **options: Any,
) -> Config:
    """A Config from the command line and the environment (GITHUB_TOKEN, GITHUB_API_URL, the
    secret's variable); a missing one is an error that says which."""
    secret = environ.get(secret_env, "")
    if not secret:
        raise GitopsError(
            f"the webhook secret variable {secret_env} is not set",
            f"set {secret_env} to the secret of the MLflow webhook (its secret_env in "
            "registry.yaml)",
        )
    token = environ.get("GITHUB_TOKEN", "")
    if not token:
        raise GitopsError(
            "GITHUB_TOKEN is not set",
            "give the relay a token that may create repository_dispatch events on the "
            "repository (fine-grained: Contents: write)",
        )
    repository = repository or environ.get("GITHUB_REPOSITORY", "")
    owner, _, name = repository.partition("/")
    if not owner or not name or "/" in name:
        raise GitopsError(f"--repository '{repository}' is not OWNER/NAME", "e.g. acme/models")
    register_secrets((secret, token))
    api_url = environ.get("GITHUB_API_URL") or "https://api.github.com"
    return Config(repository, secret, token, journal, api_url=api_url, **options)


@dataclass
class _Pending:
    event: Event
    next_try: float
    deadline: float
    attempts: int = 0


@dataclass
class Counters:
    accepted: int = 0
    dispatched: int = 0
    own: int = 0
    refused: int = 0
    failed: int = 0
    last_error: str = ""


class Relay:
    """The queue, the journal and the worker; `serve` adds the HTTP front."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.cond = threading.Condition()
        self.pending: dict[str, _Pending] = {}
        self.seen: dict[str, float] = {}  # delivery id -> when accepted (replay refusal)
        self.marks = Marks(keep=config.settle * 2)
        self.counters = Counters()
        self.stopping = False
        self.finished = 0
        now = clock()
        entries = replay(config.journal)
        for e in entries:
            if e.event.received >= self._horizon(now):
                self.seen[e.event.delivery_id] = e.event.received
                mark = mark_of(e.event)
                if mark is not None:
                    self.marks.add(mark)
            if e.done is None:
                self._queue(e.event)
        compact(config.journal, entries, self._horizon(now))
        if self.pending:
            log.info("relay: %d event(s) from the journal queued again", len(self.pending))
        self.journal = Journal(config.journal)
        self.worker = threading.Thread(target=self._work, name="relay-dispatch", daemon=True)

    def _horizon(self, now: float) -> float:
        """Entries received before this are no longer needed: a replay of them is refused by
        its timestamp, and no held event waits for their record."""
        return now - 2 * self.config.tolerance - 2 * self.config.settle

    def _queue(self, event: Event) -> None:
        due = event.received + self.config.settle
        self.pending[event.delivery_id] = _Pending(event, due, due + self.config.retry_for)

    # --- receiving --------------------------------------------------------------------------

    def receive(self, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """(status, reason) for one delivery; 2xx only once it is in the journal."""
        now = self.clock()
        try:
            delivery, stamp = verify(headers, body, self.config.secret, now, self.config.tolerance)
            data = _payload(body)
        except Refused as refused:
            with self.cond:
                self.counters.refused += 1
            log.warning("relay: refused a delivery: %s", refused.reason)
            return refused.status, refused.reason
        event = Event(delivery, f"{data['entity']}.{data['action']}", data["data"], now)
        with self.cond:
            if delivery in self.seen:
                self.counters.refused += 1
                log.warning("relay: refused delivery %s: already received (replay)", delivery)
                return 409, "delivery already received"
            if len(self.pending) >= self.config.max_queue:
                return 503, "queue full; retry later"
            self.journal.accept(event, stamp)
            self.seen[delivery] = now
            self.counters.accepted += 1
            if tool_tag(event):
                mark = mark_of(event)
                if mark is not None:
                    self.marks.add(mark)
                self._finish(delivery, "own")
            else:
                self._queue(event)
                self.cond.notify_all()
        return 200, "accepted"

    def _finish(self, delivery: str, result: str) -> None:
        """Record the outcome (under the condition's lock)."""
        self.journal.done(delivery, result)
        self.pending.pop(delivery, None)
        self.finished += 1
        if self.finished % COMPACT_EVERY == 0:
            self.journal.close()
            horizon = self._horizon(self.clock())
            compact(self.config.journal, replay(self.config.journal), horizon)
            self.seen = {k: v for k, v in self.seen.items() if v >= horizon}
            self.journal = Journal(self.config.journal)
        if result == "own":
            self.counters.own += 1
        elif result == "dispatched":
            self.counters.dispatched += 1
        else:
            self.counters.failed += 1

    # --- dispatching ------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self.cond:
                item = self._next()
                if item is None:
                    return
                if item.attempts == 0 and self.marks.names(item.event, self.clock()):
                    self._finish(item.event.delivery_id, "own")
                    continue
            self._dispatch(item)

    def _next(self) -> _Pending | None:
        """The oldest pending event that is due, waiting for one (None: stopping)."""
        while not self.stopping:
            now = self.clock()
            due = [p for p in self.pending.values() if p.next_try <= now]
            if due:
                return min(due, key=lambda p: (p.event.received, p.event.delivery_id))
            soonest = min((p.next_try for p in self.pending.values()), default=now + 1.0)
            self.cond.wait(timeout=max(0.01, min(1.0, soonest - now)))
        return None

    def _dispatch(self, item: _Pending) -> None:
        event = item.event
        try:
            send(
                self.config.api_url,
                self.config.repository,
                self.config.token,
                dispatch_payload(event),
                self.config.timeout,
            )
        except DispatchFailed as exc:
            now = self.clock()
            with self.cond:
                self.counters.last_error = str(exc)
                if exc.retry and now < item.deadline:
                    item.attempts += 1
                    item.next_try = now + min(MAX_BACKOFF_S, 2.0 ** (item.attempts - 1))
                    log.warning("relay: %s; retrying %s", exc, event.delivery_id)
                    return
                self._finish(event.delivery_id, "failed")
            log.error(
                "relay: gave up on %s (%s %s): %s", event.delivery_id, event.event, event.model, exc
            )
            return
        with self.cond:
            self._finish(event.delivery_id, "dispatched")
        log.info("relay: dispatched %s on %s (%s)", event.event, event.model, event.delivery_id)

    # --- health and life ----------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        with self.cond:
            c = self.counters
            alive = self.worker.is_alive()
            body = {
                "status": "ok" if alive else "worker stopped",
                "pending": len(self.pending),
                "accepted": c.accepted,
                "dispatched": c.dispatched,
                "own": c.own,
                "refused": c.refused,
                "failed": c.failed,
                "last_error": c.last_error,
            }
        return (200 if alive else 503), body

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if self.worker.is_alive():
            self.worker.join(timeout=self.config.timeout + 5)
        self.journal.close()


def _payload(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise Refused(400, "the body is not JSON") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("entity"), str)
        or not isinstance(data.get("action"), str)
        or not isinstance(data.get("data"), dict)
    ):
        raise Refused(400, "not an MLflow webhook payload (entity, action, data)")
    return data


def make_server(relay: Relay) -> ThreadingHTTPServer:
    """The HTTP front of a relay, bound to its host and port (not serving yet)."""
    config = relay.config

    class Handler(BaseHTTPRequestHandler):
        timeout = 30  # a client that stalls mid-request is dropped
        server_version = "mlflow-gitops-relay"
        sys_version = ""

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if status == 503:
                self.send_header("Retry-After", "5")
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/healthz":
                self._answer(404, {"error": "not found"})
                return
            status, body = relay.health()
            self._answer(status, body)

        def do_POST(self) -> None:
            if self.path.split("?")[0] != "/webhook":
                self._answer(404, {"error": "not found"})
                return
            raw = self.headers.get("Content-Length")
            if raw is None or not raw.isdigit():
                self.close_connection = True
                self._answer(411, {"error": "Content-Length required"})
                return
            if int(raw) > config.max_body:
                # never read it: the connection is closed after the answer
                self.close_connection = True
                with relay.cond:
                    relay.counters.refused += 1
                log.warning(
                    "relay: refused a delivery of %s bytes (limit %d)", raw, config.max_body
                )
                self._answer(413, {"error": f"body over {config.max_body} bytes"})
                return
            body = self.rfile.read(int(raw))
            headers = {
                h: self.headers.get(h, "")
                for h in (DELIVERY_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
            }
            status, reason = relay.receive(headers, body)
            self._answer(status, {"result" if status < 400 else "error": reason})

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("relay: %s %s", self.address_string(), format % args)

    server = ThreadingHTTPServer((config.host, config.port), Handler)
    server.daemon_threads = True
    return server


def run(config: Config, ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted (SIGINT or SIGTERM as KeyboardInterrupt); the queue stays in
    the journal for the next start."""
    relay = Relay(config)
    server = make_server(relay)
    relay.start()
    host, port = server.server_address[:2]
    where = f"http://{host!s}:{port}"
    log.info(
        "relay: listening on %s (POST /webhook, GET /healthz) for %s", where, config.repository
    )
    if ready is not None:
        ready(where)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        relay.stop()
