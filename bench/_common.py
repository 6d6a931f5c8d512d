"""Shared helpers for the benchmarks: an `mlflow server` on a loopback port, a registry written
straight into its database with MLflow's own SQLAlchemy models, an HTTP request counter, tables and
result files.

Benchmarks are measurements, never tests: nothing here asserts a timing.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
BIN = Path(sys.executable).parent
MLFLOW = str(BIN / "mlflow")
GITOPS = str(BIN / "mlflow-gitops")
HOST = "127.0.0.1"
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
LOAD_AT_START = os.getloadavg()
# every script's --smoke: tiny sizes, seconds, no shared data; tests/test_bench_smoke.py runs it
SMOKE_HELP = (
    "tiny sizes, seconds: checks that the benchmark still runs (figures to the temp folder)"
)


# --- the registry's content ------------------------------------------------------------------


@dataclass(frozen=True)
class VersionRow:
    version: int
    stage: str
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class ModelRow:
    name: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    versions: tuple[VersionRow, ...] = ()


def synthetic_models(n_models: int, n_versions: int, prefix: str = "bench-model") -> list[ModelRow]:
    """The newest version in Production, the one before in Staging, the older half Archived,
    two tags on every version and a `champion` alias on the Production version."""

    def stage(v: int) -> str:
        if v == n_versions:
            return "Production"
        if v == n_versions - 1:
            return "Staging"
        return "Archived" if v <= n_versions // 2 else "None"

    return [
        ModelRow(
            name=f"{prefix}-{i:04d}",
            description=f"Benchmark model {i}: NYC green taxi trip duration in minutes.",
            tags={"team": "rides", "task": "regression"},
            aliases={"champion": n_versions},
            versions=tuple(
                VersionRow(v, stage(v), {"model_type": "gbr", "trained_by": f"user{v % 7}"})
                for v in range(1, n_versions + 1)
            ),
        )
        for i in range(n_models)
    ]


def registry_yaml(
    models: Sequence[ModelRow], stages: dict[tuple[str, int], str | None] | None = None
) -> str:
    """A block-style registry.yaml (as `mlflow-gitops import` writes it) that manages every model
    and declares every version; `stages` overrides the declared stage of some versions (None:
    the entry leaves the stage unmanaged)."""
    import yaml

    stages = stages or {}

    def entry(m: ModelRow, v: VersionRow) -> dict[str, Any]:
        stage = stages.get((m.name, v.version), v.stage)
        return {"version": v.version, **({"stage": stage} if stage else {}), "tags": dict(v.tags)}

    doc = {
        "version": 1,
        "models": {
            m.name: {
                "description": m.description,
                "tags": dict(m.tags),
                "aliases": dict(m.aliases),
                "versions": [entry(m, v) for v in m.versions],
            }
            for m in models
        },
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=100)


def quiet_mlflow() -> None:
    """MLflow logs alembic migrations and deprecation warnings; a benchmark prints a table."""
    import logging
    import warnings

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def create_schema(db_uri: str) -> None:
    """MLflow's own store creates every table and stamps the alembic revision, so the server
    starts on the file without migrating."""
    quiet_mlflow()
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(db_uri).engine.dispose()


def write_registry(db_uri: str, models: Sequence[ModelRow], *, replace: bool = False) -> float:
    """Bulk-insert models, versions, tags and aliases in one transaction; seconds taken.

    With replace, every registry row is deleted first (resets a registry under a running server:
    the SQL store caches nothing between requests)."""
    import sqlalchemy as sa
    from mlflow.store.model_registry.dbmodels.models import (
        SqlModelVersion,
        SqlModelVersionTag,
        SqlRegisteredModel,
        SqlRegisteredModelAlias,
        SqlRegisteredModelTag,
    )
    from mlflow.utils.workspace_utils import DEFAULT_WORKSPACE_NAME as WS

    started = time.perf_counter()
    now = int(time.time() * 1000)
    rm, rm_tags, aliases, mv, mv_tags = [], [], [], [], []
    for i, model in enumerate(models):
        created = now - (len(models) - i) * 1000
        rm.append(
            {
                "workspace": WS,
                "name": model.name,
                "creation_time": created,
                "last_updated_time": created,
                "description": model.description,
            }
        )
        rm_tags += [
            {"workspace": WS, "name": model.name, "key": k, "value": v}
            for k, v in model.tags.items()
        ]
        aliases += [
            {"workspace": WS, "name": model.name, "alias": a, "version": n}
            for a, n in model.aliases.items()
        ]
        for v in model.versions:
            mv.append(
                {
                    "workspace": WS,
                    "name": model.name,
                    "version": v.version,
                    "creation_time": created + v.version,
                    "last_updated_time": created + v.version,
                    "description": v.description,
                    "user_id": "bench",
                    "current_stage": v.stage,
                    "source": f"models:/m-{i:08x}{v.version:024x}",
                    "storage_location": f"/tmp/bench-artifacts/{model.name}/{v.version}",
                    "run_id": f"{i:08x}{v.version:024x}",
                    "run_link": "",
                    "status": "READY",
                    "status_message": "",
                }
            )
            mv_tags += [
                {"workspace": WS, "name": model.name, "version": v.version, "key": k, "value": t}
                for k, t in v.tags.items()
            ]
    tables = [
        (SqlRegisteredModel, rm),
        (SqlRegisteredModelTag, rm_tags),
        (SqlModelVersion, mv),
        (SqlModelVersionTag, mv_tags),
        (SqlRegisteredModelAlias, aliases),
    ]
    engine = sa.create_engine(db_uri)
    try:
        with engine.begin() as conn:
            if replace:
                for model, _ in reversed(tables):
                    conn.execute(sa.delete(model.__table__))
            for model, rows in tables:
                if rows:
                    conn.execute(sa.insert(model.__table__), rows)
    finally:
        engine.dispose()
    return time.perf_counter() - started


@contextlib.contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    import sqlalchemy as sa

    admin = sa.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


# --- the server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """`mlflow server` on a free loopback port; stopped (its whole process group) on exit."""

    def __init__(
        self, backend_uri: str, workdir: Path, *, workers: int = 1, gunicorn: bool = False
    ) -> None:
        self.backend_uri = backend_uri
        self.workdir = workdir
        self.workers = workers
        self.gunicorn = gunicorn
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"server-{self.port}.log"

    @property
    def label(self) -> str:
        return f"{'gunicorn' if self.gunicorn else 'uvicorn'}, --workers {self.workers}"

    def __enter__(self) -> MlflowServer:
        cmd = [
            MLFLOW,
            "server",
            "--backend-store-uri",
            self.backend_uri,
            "--default-artifact-root",
            str(self.workdir / "artifacts"),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        if self.gunicorn:
            cmd += ["--gunicorn-opts", "--timeout 120"]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        env.setdefault(
            "UVICORN_TIMEOUT_WORKER_HEALTHCHECK", "120"
        )  # a slow worker start is no crash
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: workers are stopped with it
            )
        try:
            self._wait_healthy(timeout=120)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited; see {self.log}:\n{self._tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"mlflow server not healthy after {timeout}s:\n{self._tail()}")

    def _tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


# --- counting HTTP requests ---------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    url_chars: int
    status: int
    seconds: float
    started: float = 0.0  # time.perf_counter() when it was sent


def in_flight_seconds(requests: list[Request]) -> float:
    """How long at least one of these requests was in flight (concurrent ones counted once)."""
    total, end = 0.0, float("-inf")
    for r in sorted(requests, key=lambda r: r.started):
        finish = r.started + r.seconds
        if finish > end:
            total += finish - max(r.started, end)
            end = finish
    return total


class HttpCounter:
    """Counts the real HTTP requests made through requests.Session (MLflow's REST client)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._original: Any = None

    def __enter__(self) -> HttpCounter:
        import requests

        original = requests.Session.request
        counter = self

        def request(session: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            resp = original(session, method, url, *args, **kwargs)
            sent = resp.request.url or url
            with counter._lock:
                counter.requests.append(
                    Request(
                        method,
                        url.split("?", 1)[0].split("/api/", 1)[-1],
                        len(sent),
                        resp.status_code,
                        time.perf_counter() - started,
                        started,
                    )
                )
            return resp

        self._original = original
        requests.Session.request = request  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        import requests

        requests.Session.request = self._original  # type: ignore[method-assign]

    @property
    def count(self) -> int:
        return len(self.requests)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def by_path(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.requests:
            key = f"{r.method} {r.path}"
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))


# --- timing, tables, results ---------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed_subprocess(
    cmd: Sequence[str], **kwargs: Any
) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    return time.perf_counter() - started, done


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 100 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def machine() -> dict[str, Any]:
    import mlflow

    return {
        "python": platform.python_version(),
        "mlflow": mlflow.__version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        # the machine is shared: the load average says how busy it was while measuring
        "load_average_1_5_15_at_start": [round(x, 2) for x in LOAD_AT_START],
        "load_average_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def write_results(name: str, data: dict[str, Any], quick: bool, smoke: bool = False) -> Path:
    """bench/results/<name>.json (a --quick run writes <name>.quick.json, never the committed
    file; a --smoke run writes into the temporary folder, never into bench/)."""
    if smoke:
        folder = Path(tempfile.gettempdir()) / "mlflow-gitops-bench-smoke"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.json"
    else:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / (f"{name}.quick.json" if quick else f"{name}.json")
    doc = {
        "benchmark": name,
        "quick": quick,
        "smoke": smoke,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path
