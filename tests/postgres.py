"""A fresh PostgreSQL database per `mlflow server`, on the server at 127.0.0.1:5432 (trust auth,
database `test`), started first if it is installed but down; dropped when the server stops."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import MlflowServer

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def postgres_database() -> tuple[str, str] | None:
    """(database name, SQLAlchemy URI) of a new empty database; None when PostgreSQL is out of
    reach."""
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
    """Drop a database made by postgres_database(), sessions included."""
    import psycopg2

    conn = psycopg2.connect(PG_DSN, connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


UNREACHABLE = (
    "PostgreSQL on 127.0.0.1:5432 (trust auth, database test) could not be reached or started; "
    "start it with `pg_ctlcluster --skip-systemctl-redirect <version> main start`"
)


@contextmanager
def postgres_server(workdir: Path) -> Iterator[MlflowServer]:
    """An `mlflow server` on a fresh database, stopped and dropped afterwards; a PostgreSQL out
    of reach fails the test (it is one of the real registries, never skipped)."""
    import pytest

    db = postgres_database()
    if db is None:
        pytest.fail(UNREACHABLE)
    name, uri = db
    try:
        with MlflowServer(uri, workdir) as server:
            yield server
    finally:
        drop_postgres_database(name)
