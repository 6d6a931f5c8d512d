"""A fault-injecting HTTP reverse proxy on loopback, in front of a real `mlflow server` that can be
killed and restarted on the same port with the same backend store.

Faults are armed for the next N requests that match (all requests, or only writes):

- `status`: answer 503 without forwarding;
- `slow`: hold the request past the client's timeout, then forward it (it lands late);
- `drop`: close the connection without an answer, before forwarding (`drop`) or after the server
  has done the work (`drop_after`: the write happened, the answer is lost);
- `kill`: stop the server before forwarding; the proxy answers 502 while it is down (what nginx
  or a cloud load balancer does), and `restart()` brings it back.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

from tests.servers import MlflowServer

Fault = Literal["status", "slow", "drop", "drop_after", "kill"]
WRITES = frozenset({"POST", "PATCH", "DELETE", "PUT"})


class Server:
    """`mlflow server` (tests/servers.MlflowServer) on a fixed loopback port; stop() and start()
    keep port and backend, so a killed server comes back where the proxy forwards."""

    def __init__(self, backend_uri: str, workdir: Path, port: int) -> None:
        self.backend_uri, self.workdir, self.port = backend_uri, workdir, port
        self.uri = f"http://127.0.0.1:{port}"
        self.running: MlflowServer | None = None
        self.starts = 0
        self.starting = False

    @property
    def down(self) -> bool:
        """Neither running nor on its way up (a restart may be under way in another thread)."""
        return self.running is None and not self.starting

    def start(self) -> None:
        """Start and wait until /health answers (one log file per start)."""
        log_name = f"server-{self.starts}.log"
        self.starts += 1
        self.starting = True
        try:
            self.running = MlflowServer(
                self.backend_uri, self.workdir, port=self.port, workers=1, log_name=log_name
            )
        finally:
            self.starting = False

    def stop(self, kill: bool = False) -> None:
        """Terminate (or SIGKILL) the server and its workers."""
        if self.running is None:
            return
        self.running.stop(kill=kill)
        self.running = None
        # the uvicorn/gunicorn workers may outlive a SIGKILLed parent for a moment
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=0.5):
                    time.sleep(0.1)
            except OSError:
                return

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Armed:
    fault: Fault
    remaining: int  # how many matching requests it still hits; -1: until disarmed
    writes_only: bool
    skip: int = 0  # let this many matching requests through first
    delay: float = 0.0
    path: str = ""  # only requests whose path contains this


@dataclass
class Proxy:
    """A threaded reverse proxy on 127.0.0.1 in front of `server`."""

    server: Server
    requests: int = 0
    writes: int = 0
    hits: list[str] = field(default_factory=list)  # "FAULT METHOD PATH" for every fault dealt
    log: list[str] = field(default_factory=list)  # "METHOD PATH STATUS" for every request
    on_kill: Callable[[], None] | None = None
    _armed: list[Armed] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                proxy._serve(self)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

            def log_message(self, *args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.uri = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def arm(
        self,
        fault: Fault,
        times: int = 1,
        *,
        writes_only: bool = True,
        skip: int = 0,
        delay: float = 0.0,
        path: str = "",
    ) -> None:
        """Deal `fault` to the next `times` matching requests (-1: every one), after `skip`."""
        with self._lock:
            self._armed.append(Armed(fault, times, writes_only, skip, delay, path))

    def disarm(self) -> None:
        with self._lock:
            self._armed.clear()

    def _pick(self, method: str, path: str) -> Armed | None:
        with self._lock:
            self.requests += 1
            self.writes += method in WRITES
            for armed in self._armed:
                if (armed.writes_only and method not in WRITES) or armed.path not in path:
                    continue
                if armed.skip:
                    armed.skip -= 1
                    continue
                if armed.remaining == 0:
                    continue
                if armed.remaining > 0:
                    armed.remaining -= 1
                self.hits.append(f"{armed.fault} {method} {path}")
                return armed
        return None

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        armed = self._pick(h.command, h.path)
        fault = armed.fault if armed else None
        if fault == "status":
            return self._answer(h, 503, b'{"error_code": "TEMPORARILY_UNAVAILABLE"}')
        if fault == "drop":
            return self._drop(h)
        if fault == "kill":
            self.server.stop(kill=True)
            if self.on_kill:
                self.on_kill()
        if armed and fault == "slow":
            time.sleep(armed.delay)
        try:
            status, headers, data = self._forward(h, body)
        except OSError:
            return self._answer(h, 502, b'{"error_code": "BAD_GATEWAY"}')
        if fault == "drop_after":
            return self._drop(h)
        self._answer(h, status, data, headers)

    def _forward(
        self, h: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        try:
            skip = {"host", "connection", "keep-alive", "transfer-encoding"}
            headers = {k: v for k, v in h.headers.items() if k.lower() not in skip}
            conn.request(h.command, h.path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            kept = [
                (k, v)
                for k, v in response.getheaders()
                if k.lower() not in {"connection", "transfer-encoding", "content-length"}
            ]
            return response.status, kept, data
        finally:
            conn.close()

    def _answer(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        with self._lock:
            self.log.append(f"{h.command} {h.path} {status}")
        try:
            h.send_response(status)
            for key, value in headers or [("Content-Type", "application/json")]:
                h.send_header(key, value)
            h.send_header("Content-Length", str(len(data)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass  # the client gave up (timeout): the answer has nowhere to go
        h.close_connection = True

    def _drop(self, h: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.log.append(f"{h.command} {h.path} dropped")
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.connection.shutdown(socket.SHUT_RDWR)
