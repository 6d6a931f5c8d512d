"""Reading never changes a registry: MLflow's SQL store upgrades the schema of a database an older
MLflow wrote the moment it opens it, without a word, after which that older MLflow cannot open it.
Before MLflow's store touches a `sqlite:///` file, its schema version is read with the standard
library and compared with the installed MLflow's; an older one stops the command with what to do,
unless the user chose the upgrade (UPGRADE_VARIABLE)."""

from __future__ import annotations

import functools
import os
import sqlite3
from pathlib import Path

from mlflow_gitops.errors import RegistryError

UPGRADE_VARIABLE = "MLFLOW_GITOPS_UPGRADE_DB"


def sqlite_path(uri: str) -> Path | None:
    """The file of a sqlite:/// URI (None: another store, or an in-memory database)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return None if not path or path == ":memory:" else Path(path)


def schema_version(path: Path) -> str | None:
    """The alembic revision a SQLite file records (None: no file, or no MLflow schema in it),
    read-only: the file is opened in SQLite's read-only mode and never written."""
    if not path.is_file():
        return None
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
        found = db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='alembic_version'"
        ).fetchone()
        if found is None:
            return None
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


@functools.cache
def installed_version() -> str:
    """The schema revision the installed MLflow's stores expect (its migrations' head): read
    once per process (alembic parses every migration script, ~30 ms; a plan opens the registry
    and the gates' evidence, each checking)."""
    from mlflow.store.db.utils import _get_latest_schema_revision

    return str(_get_latest_schema_revision())  # type: ignore[no-untyped-call]


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision of the installed MLflow's migrations: a file's revision outside them was
    written by a newer MLflow."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    script = ScriptDirectory.from_config(_get_alembic_config(db_url=""))  # type: ignore[no-untyped-call]
    return frozenset(rev.revision for rev in script.walk_revisions())


def check_schema(uri: str) -> None:
    """Refuse to open a SQLite registry an older MLflow wrote (MLflow's store would upgrade it),
    unless MLFLOW_GITOPS_UPGRADE_DB=1 chooses the upgrade. Other stores: nothing to check."""
    path = sqlite_path(uri)
    if path is None:
        return
    found = schema_version(path)
    if found is None:
        return
    head = installed_version()
    if found == head or found not in known_revisions():
        return  # current, or newer than this MLflow (MLflow's own error says so)
    if os.environ.get(UPGRADE_VARIABLE, "").strip().lower() in ("1", "true", "yes"):
        return
    import mlflow

    raise RegistryError(
        f"{path}: the database's schema is out of date (revision {found}, written by an older "
        f"MLflow; MLflow {mlflow.__version__} expects revision {head}). Opening it would upgrade "
        "it, after which the older MLflow cannot open it; nothing was read or changed",
        f"upgrade it (back the file up first): `mlflow db upgrade {uri}`, or set "
        f"{UPGRADE_VARIABLE}=1 to let this command upgrade it",
    )
