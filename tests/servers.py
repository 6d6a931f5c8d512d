"""One launcher for every real `mlflow server` the tests start: MLflow 3 from this venv or an
MLflow 2.x venv, optionally with basic-auth, always on a free loopback port, always stopped; and
the throwaway PostgreSQL databases the PostgreSQL-backed servers use."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Self

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_group(proc: subprocess.Popen[bytes], grace: float, *, kill: bool = False) -> None:
    """Terminate a server started in its own session, workers included (SIGKILL after `grace`;
    `kill`: SIGKILL at once)."""
    if proc.poll() is not None:
        return
    group = os.getpgid(proc.pid)
    os.killpg(group, signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(group, signal.SIGKILL)
        proc.wait(timeout=10)


def this_mlflow() -> str:
    """The `mlflow` executable of the interpreter running the tests (MLflow 3)."""
    return str(Path(sys.executable).parent / "mlflow")


class MlflowServer:
    """An `mlflow server` child process on a free loopback port, in its own process group.

    `mlflow_bin` picks the MLflow (another venv's `mlflow` for 2.x), `app_name` an MLflow app such
    as `basic-auth`, `env` extra variables (e.g. MLFLOW_AUTH_CONFIG_PATH)."""

    def __init__(
        self,
        backend_uri: str,
        workdir: Path,
        *,
        mlflow_bin: str | None = None,
        app_name: str | None = None,
        env: Mapping[str, str] | None = None,
        workers: int = 2,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        log_name: str = "server.log",
    ) -> None:
        self.backend_uri, self.workdir = backend_uri, workdir
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / log_name
        args = [
            mlflow_bin or this_mlflow(), "server",
            "--backend-store-uri", backend_uri,
            "--artifacts-destination", str(workdir / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
        ]  # fmt: skip
        if app_name:
            args += ["--app-name", app_name]
        args += list(extra_args)
        child_env = {**os.environ, **(env or {})}
        # uvicorn (0.30+) kills a worker that has not answered its health check within 5 s, and a
        # worker importing mlflow on a busy 2-core machine takes longer: the server then restarts
        # workers forever and never becomes healthy
        child_env.setdefault("UVICORN_TIMEOUT_WORKER_HEALTHCHECK", "120")
        # MLflow 3.x starts a job runner and seven huey consumers per server (about 1.5 GB): the
        # tests use no server jobs, and a dozen servers at once filled this 24 GiB machine
        child_env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        # the server must never inherit a client's credentials or target
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            if key not in (env or {}):
                child_env.pop(key, None)
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=child_env,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server did not become healthy in 180 s: {self.log_path}")

    def stop(self, *, kill: bool = False) -> None:
        """Terminate the server and its workers (SIGKILL after 20 s); `kill`: SIGKILL at once,
        the way a crashed host or an OOM kill ends it."""
        stop_group(self.proc, grace=20, kill=kill)

    def __enter__(self) -> MlflowServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def postgres_database() -> tuple[str, str] | None:
    """A new, empty database on the PostgreSQL server at 127.0.0.1:5432 (started if it is
    installed and down): (its name, its SQLAlchemy URI); None when there is no PostgreSQL."""
    try:
        import psycopg2
    except ImportError:
        return None
    try:
        conn = psycopg2.connect(PG_DSN, connect_timeout=5)
    except Exception:
        if shutil.which("pg_ctlcluster") and os.path.isdir("/etc/postgresql"):
            version = sorted(os.listdir("/etc/postgresql"))[-1]
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                check=False, capture_output=True, timeout=60,
            )  # fmt: skip
            try:
                conn = psycopg2.connect(PG_DSN, connect_timeout=10)
            except Exception:
                return None
        else:
            return None
    name = f"mlflow_gitops_{uuid.uuid4().hex[:12]}"
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return name, f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


def drop_postgres_database(name: str) -> None:
    """Drop a database made by postgres_database (its connections closed first)."""
    import psycopg2

    conn = psycopg2.connect(PG_DSN, connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@contextmanager
def postgres_server(workdir: Path) -> Iterator[MlflowServer]:
    """An `mlflow server` on a fresh PostgreSQL database, stopped and dropped afterwards; a
    PostgreSQL out of reach fails the test (it is one of the real registries, never skipped)."""
    import pytest

    db = postgres_database()
    if db is None:
        pytest.fail(
            "PostgreSQL on 127.0.0.1:5432 (trust auth, database test) could not be reached or "
            "started; start it with `pg_ctlcluster --skip-systemctl-redirect <version> main start`"
        )
    name, uri = db
    try:
        with MlflowServer(uri, workdir) as server:
            yield server
    finally:
        drop_postgres_database(name)


class LoopbackProcess:
    """A server the tests run as a child process in its own session, on a free loopback port,
    logging to `log_path`, always stopped (a context manager). Subclasses start `proc` and call
    `wait_listening`; `mark` and `requests` read an access log with a line per request."""

    name = "server"
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def wait_listening(self, seconds: float = 60) -> None:
        """Until the port takes a TCP connection (no HTTP request: some count them); the log's
        tail if the process exits first."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not listen in {seconds:.0f} s: {self.log_path}")

    def mark(self) -> int:
        """The position in the log after every request answered so far (the log is written
        after each answer: a request of our own marks the point once it shows up)."""
        token = f"gitops-mark-{uuid.uuid4().hex}"
        with contextlib.suppress(urllib.error.HTTPError):  # any answer will do
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/{token}", timeout=10).close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for i, line in enumerate(self._lines()):
                if token in line:
                    return i + 1
            time.sleep(0.05)
        raise RuntimeError(f"the mark request is not in {self.log_path}")

    def requests(self, since: int = 0) -> list[str]:
        """The requests answered after a mark(), as their log lines (`"METHOD /path HTTP/1.1"
        status ...`); call mark() first to see the latest ones."""
        return [line for line in self._lines()[since:] if "gitops-mark-" not in line]

    def _lines(self) -> list[str]:
        return [line for line in self.log_path.read_text().splitlines() if " HTTP/1." in line]

    def stop(self) -> None:
        stop_group(self.proc, grace=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
