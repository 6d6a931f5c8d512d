"""The plugin scenario's pieces: the test-only plugin's folder (tests/plugins/site, found by
MLflow's entry points in this process and, through PYTHONPATH, in subprocesses) and a loopback
proxy in front of a real `mlflow server` that refuses every request the plugin did not sign."""

from __future__ import annotations

import http.client
import importlib
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SITE = Path(__file__).resolve().parent / "site"
SIGNATURE = "X-Gitopstest-Signature"


def load_plugin() -> None:
    """Make MLflow's plugin registries in this process find the plugin by its entry points, as
    they do at import when its folder is on the path from the start (a subprocess's PYTHONPATH)."""
    if str(SITE) not in sys.path:
        sys.path.insert(0, str(SITE))
    importlib.invalidate_caches()
    from mlflow.tracking._model_registry.utils import _model_registry_store_registry
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry
    from mlflow.tracking.request_auth.registry import _request_auth_provider_registry

    _tracking_store_registry.register_entrypoints()
    _model_registry_store_registry.register_entrypoints()
    if not any(p.get_name() == "gitopstest" for p in _request_auth_provider_registry):
        _request_auth_provider_registry.register_entrypoints()


def expected_signature(method: str, path: str) -> str:
    sys.path.insert(0, str(SITE))
    try:
        from gitopstest_plugin import signature
    finally:
        sys.path.remove(str(SITE))
    return str(signature(method, path))


@dataclass
class SigningProxy:
    """Forwards to `upstream` (host:port) only requests that carry the plugin's signature; the
    others get 401. `seen`: (method, path, signed) of every request."""

    upstream: str
    port: int = 0
    seen: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def refused(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, signed in self.seen if not signed]


@contextmanager
def signing_proxy(upstream: str) -> Iterator[SigningProxy]:
    """A SigningProxy on a free loopback port, stopped afterwards."""
    proxy = SigningProxy(upstream)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            path = self.path.split("?", 1)[0]
            signed = self.headers.get(SIGNATURE) == expected_signature(self.command, path)
            with lock:
                proxy.seen.append((self.command, path, signed))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if not signed:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
