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


# schemes whose URIs name a host or a database the tool normalizes (default ports, no user,
# no query); any other scheme (a plugin's: arn:, azureml://, databricks://, ...) passes through
_NETWORK_SCHEMES = ("http", "https", "postgresql", "mysql", "mssql", "oracle")


def uri_scheme(uri: str) -> str | None:
    """The scheme of a URI (lower case), None for a bare path (a local folder; a single letter
    before ':' is a Windows drive, not a scheme)."""
    head, colon, _ = uri.partition(":")
    if not colon or len(head) < 2 or not head[0].isalpha():
        return None
    if not all(c.isalnum() or c in "+-." for c in head):
        return None
    return head.lower()


def registry_identity(uri: str) -> str:
    """Which registry a URI points at, without credentials: scheme://host:port/path for servers
    and databases (user, password, query dropped; default ports filled in), the absolute path
    for sqlite and file stores. Only a bare path and file: are local folders; a URI of any other
    scheme (one MLflow resolves through a plugin: arn:, azureml://, databricks://<profile>)
    is its own identity, as given, without a user or query. Two URIs with the same identity
    reach the same registry."""
    from urllib.parse import urlsplit

    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :].split("?", 1)[0]
        if path == ":memory:" or not path:
            return "sqlite:///:memory:"
        return "sqlite:///" + str(Path(path).resolve())  # a relative path: from the cwd
    scheme = uri_scheme(uri)
    if scheme is None:  # a local folder: MLflow's file store
        return "file://" + str(Path(uri).resolve())
    parts = urlsplit(uri)
    if scheme == "file":
        return "file://" + str(Path(parts.path).resolve())
    if scheme.split("+", 1)[0] not in _NETWORK_SCHEMES:
        # a plugin's URI, as given: only a user (and password) before '@' and a query go
        given = uri.split("?", 1)[0]
        if "://" in given:
            front, rest = given.split("://", 1)
            netloc, slash, path = rest.partition("/")
            return f"{front}://{netloc.rpartition('@')[2]}{slash}{path}"
        return given
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or {"http": 80, "https": 443}.get(scheme)
    where = f"{host}:{port}" if port else host
    return f"{scheme}://{where}{parts.path.rstrip('/')}"
