"""Where the registry is: --tracking-uri, MLFLOW_TRACKING_URI, the file's tracking_uri, the
default; the registry URI beside it (MLFLOW_REGISTRY_URI, the file's registry_uri, MLflow's default
for the tracking URI); both, with the credentials and the audit experiment, as one `Endpoint`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mlflow_gitops.credentials import Credentials
from mlflow_gitops.errors import RegistryError

DEFAULT_URI = "sqlite:///mlflow.db"
UNITY_CATALOG_SCHEME = "databricks-uc"


@dataclass(frozen=True)
class Endpoint:
    """Where one registry is: its tracking URI (runs: the gates' metrics, the apply lock, the
    audit record and the runs that hold copies) and its registry URI (the models; empty: MLflow's
    default for the tracking URI, default_registry_uri), the credentials its requests send (None:
    MLflow's variables as the process has them) and the audit experiment's name (None: the
    backend's default for the tracking server). A repr shows neither URI: they may carry a user."""

    tracking_uri: str = field(repr=False)
    registry_uri: str = field(default="", repr=False)
    credentials: Credentials | None = field(default=None, repr=False)
    audit_experiment: str | None = None

    def __post_init__(self) -> None:
        if not self.registry_uri:
            object.__setattr__(self, "registry_uri", default_registry_uri(self.tracking_uri))

    @property
    def identity(self) -> str:
        """The registry the models live in, without credentials (registry_identity)."""
        return registry_identity(self.registry_uri)

    @property
    def unity_catalog(self) -> bool:
        """Whether the models live in Databricks Unity Catalog."""
        return is_unity_catalog(self.registry_uri)


def default_registry_uri(tracking_uri: str) -> str:
    """MLflow's registry URI for a tracking URI (mlflow/tracking/_model_registry/utils.py,
    _get_default_registry_uri_for_tracking_uri): a Databricks workspace (`databricks`,
    `databricks://<profile>`) registers into Unity Catalog (`databricks-uc[://<profile>]`);
    any other tracking URI is its own registry."""
    if tracking_uri == "databricks":
        return UNITY_CATALOG_SCHEME
    if uri_scheme(tracking_uri) == "databricks":
        profile = tracking_uri.split("://", 1)[1] if "://" in tracking_uri else ""
        return f"{UNITY_CATALOG_SCHEME}://{profile}" if profile else UNITY_CATALOG_SCHEME
    return tracking_uri


def is_unity_catalog(registry_uri: str) -> bool:
    """Whether a registry URI is Databricks Unity Catalog's (`databricks-uc[://profile]`)."""
    return registry_uri == UNITY_CATALOG_SCHEME or uri_scheme(registry_uri) == UNITY_CATALOG_SCHEME


def is_databricks(uri: str) -> bool:
    """Whether a tracking or registry URI is a Databricks workspace's or Unity Catalog's."""
    return uri in ("databricks", UNITY_CATALOG_SCHEME) or uri_scheme(uri) in (
        "databricks",
        UNITY_CATALOG_SCHEME,
    )


def resolve_registry_uri(
    file_uri: str | None, tracking_uri: str, folder: Path | None, *, flag: str | None = None
) -> str:
    """The registry URI as MLflow takes it: MLFLOW_REGISTRY_URI, then the file's registry_uri
    (relative sqlite paths from the file's folder; `folder` None: as given), then the default
    for the tracking URI (default_registry_uri). When the tracking URI is the command line's
    (`flag`), MLFLOW_REGISTRY_URI is not read: a variable left in the shell must not send the
    models of an explicitly named server to another registry."""
    uri = (None if flag else os.environ.get("MLFLOW_REGISTRY_URI")) or file_uri
    if not uri:
        return default_registry_uri(tracking_uri)
    return uri if folder is None else _anchor(uri, folder)


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
    if uri in ("databricks", UNITY_CATALOG_SCHEME):  # the default profile's workspace or catalog
        return uri
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
