"""Where the registry is: --tracking-uri, MLFLOW_TRACKING_URI, the file's tracking_uri, the default."""

from __future__ import annotations

import os
from pathlib import Path

from mlflow_gitops.errors import RegistryError

DEFAULT_URI = "sqlite:///mlflow.db"


class NoTrackingUri(RegistryError):
    """No URI was given where the embedded default must not be used (pull-request comments,
    saved plans): planning against an empty local database would show every model as new."""


def resolve_tracking_uri(
    flag: str | None, file_uri: str | None, folder: Path | None, *, local_default: bool = True
) -> str:
    """The first of flag, environment, file, default; relative sqlite paths from the file resolve
    against the file's folder so the registry does not depend on the working directory. Without
    `local_default` there is no default: NoTrackingUri. `folder` None takes `file_uri` as given
    (a URI recorded already resolved, as in a saved plan)."""
    if flag:
        return flag
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if not file_uri and not local_default:
        raise NoTrackingUri(
            "no tracking URI: neither --tracking-uri, MLFLOW_TRACKING_URI nor the file's "
            "tracking_uri is set",
            "pass --tracking-uri, set MLFLOW_TRACKING_URI, or tracking_uri: in the file",
        )
    uri = file_uri or DEFAULT_URI
    return uri if folder is None else _anchor(uri, folder)


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
