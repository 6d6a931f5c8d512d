"""Where the registry is: --tracking-uri, MLFLOW_TRACKING_URI, the file's tracking_uri, the default."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(flag: str | None, file_uri: str | None, folder: Path) -> str:
    """The first of flag, environment, file, default; relative sqlite paths from the file resolve
    against the file's folder so the registry does not depend on the working directory."""
    if flag:
        return flag
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return _anchor(file_uri or DEFAULT_URI, folder)


def _anchor(uri: str, folder: Path) -> str:
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith("sqlite:////"):
        relative = uri[len(prefix) :]
        if relative and relative != ":memory:":
            return prefix + str((folder / relative).resolve())
    return uri


def registry_identity(uri: str) -> str:
    """Which registry a URI points at, without credentials: scheme://host:port/path for servers
    and databases (user, password, query dropped; default ports filled in), the absolute path
    for sqlite and file stores. Two URIs with the same identity reach the same registry."""
    from urllib.parse import urlsplit

    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :].split("?", 1)[0]
        if path == ":memory:" or not path:
            return "sqlite:///:memory:"
        return "sqlite:///" + str(Path(path).resolve())  # a relative path: from the cwd
    if uri.split(":", 1)[0] in ("databricks", "databricks-uc"):
        return uri.split("?", 1)[0]  # a profile name, never a secret
    if "://" not in uri:  # a local folder: MLflow's file store
        return "file://" + str(Path(uri).resolve())
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return "file://" + str(Path(parts.path).resolve())
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or {"http": 80, "https": 443}.get(scheme)
    where = f"{host}:{port}" if port else host
    return f"{scheme}://{where}{parts.path.rstrip('/')}"
