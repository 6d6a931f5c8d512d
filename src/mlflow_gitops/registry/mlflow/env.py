"""Lending one registry's credentials and URIs to MLflow, which otherwise reads them from the
process: REST stores that send this registry's own credentials (own_client: an MLflow server's
user, password or token; a Databricks workspace's host and token, or its profile's), and, for
MLflow's artifact repositories and fluent functions, which read MLflow's (and the Databricks
SDK's) variables and globals at every request, the variables and globals set around the block
and restored afterwards.

Every file transfer of one registry runs inside `credentials_env(its credentials)`, which holds
one process-wide lock, sets exactly its variables (unset ones removed) and restores the previous
values when the block ends, so a request to one registry never carries another's credentials."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from mlflow_gitops.credentials import CREDENTIAL_VARIABLES, Credentials
from mlflow_gitops.settings import Endpoint, is_databricks, is_unity_catalog

T = TypeVar("T")

URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_ENV_LOCK = threading.RLock()


@contextmanager
def credentials_env(credentials: Credentials | None) -> Iterator[None]:
    """Run the block with exactly these credentials in MLflow's variables, under a process-wide
    lock; the previous values come back afterwards. None keeps the environment as it is (one
    registry configured by the user's own variables): nothing changes, so no lock is taken and
    concurrent calls stay concurrent."""
    if credentials is None:
        yield
        return
    with _ENV_LOCK:
        own = credentials.variables()
        saved = {key: os.environ.get(key) for key in own}
        try:
            _set_variables(own)
            yield
        finally:
            _set_variables(saved)


@contextmanager
def mlflow_globals(
    uri: str, credentials: Credentials | None, registry_uri: str | None = None
) -> Iterator[None]:
    """For MLflow's fluent functions (mlflow.register_model) and the resolution of a models:/
    location, which talk to the process-wide tracking and registry URIs with the variables'
    credentials: the block runs under the lock with this registry's tracking URI (`uri`) and
    registry URI (default: `uri`) as the globals (MLflow 3 also writes MLFLOW_TRACKING_URI and
    MLFLOW_REGISTRY_URI) and its credentials; the previous globals and variables come back
    afterwards, so several registries never leave each other's URI behind."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with _ENV_LOCK, credentials_env(credentials):
        saved = {key: os.environ.get(key) for key in URI_VARIABLES}
        tracking, registry = tracking_utils._tracking_uri, registry_utils._registry_uri
        try:
            tracking_utils.set_tracking_uri(uri)
            registry_utils.set_registry_uri(registry_uri or uri)
            yield
        finally:
            # None (never set) is accepted and unsets it; this also resets the tracer's provider
            tracking_utils.set_tracking_uri(tracking)  # type: ignore[arg-type]
            registry_utils._registry_uri = registry
            _set_variables(saved)


def _set_variables(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value:
            os.environ[key] = value
        else:
            os.environ.pop(key, None)


def own_client(where: Endpoint) -> Any:
    """An MlflowClient for this endpoint alone (its tracking URI and its registry URI), without
    touching MLflow's globals. With credentials (a tree's named registry), its REST stores send
    this registry's credentials and only them: MLflow's REST stores take a function for the
    host's credentials, which by default reads the process's variables (MLFLOW_TRACKING_*, or
    DATABRICKS_HOST/TOKEN and the profile file for Databricks) at every request, so several
    registries read concurrently each get stores over their own (artifact transfers still read
    the variables: wrap them in credentials_env)."""
    from mlflow import MlflowClient

    tracking_uri, registry_uri, credentials = (
        where.tracking_uri,
        where.registry_uri,
        where.credentials,
    )
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
    if credentials is None:
        return client
    from mlflow.tracking._model_registry.client import ModelRegistryClient
    from mlflow.tracking._tracking_service.client import TrackingServiceClient

    tracking_store = _tracking_store(tracking_uri, credentials)
    if tracking_store is not None:
        client._tracking_client = _with_store(TrackingServiceClient, tracking_store)(tracking_uri)
    registry_store = _registry_store(registry_uri, tracking_uri, credentials)
    if registry_store is not None:
        registry = _with_store(ModelRegistryClient, registry_store)
        # MlflowClient keeps its registry client under this name, made on first use
        setattr(client, "_registry_client_lazy", registry(registry_uri, tracking_uri))  # noqa: B010
    return client


def _tracking_store(uri: str, credentials: Credentials) -> Any:
    """A tracking REST store that sends these credentials (None: not a REST server's URI)."""
    if uri.startswith(("http://", "https://")):
        from mlflow.store.tracking.rest_store import RestStore

        return RestStore(lambda: host_creds(uri, credentials))  # type: ignore[no-untyped-call]
    if is_databricks(uri):
        from mlflow.store.tracking.databricks_rest_store import DatabricksTracingRestStore

        return DatabricksTracingRestStore(lambda: databricks_creds(uri, credentials))  # type: ignore[no-untyped-call]
    return None


def _registry_store(uri: str, tracking_uri: str, credentials: Credentials) -> Any:
    """A registry REST store that sends these credentials to the registry, and to the tracking
    server where it reads runs (Unity Catalog reads the source run for a version's lineage)."""
    if uri.startswith(("http://", "https://")):
        from mlflow.store.model_registry.rest_store import RestStore

        return RestStore(lambda: host_creds(uri, credentials))  # type: ignore[no-untyped-call]
    if is_unity_catalog(uri):
        from mlflow.store._unity_catalog.registry.utils import get_uc_model_registry_store_class

        store = get_uc_model_registry_store_class()(uri, tracking_uri)  # type: ignore[no-untyped-call]
    elif is_databricks(uri):
        from mlflow.store.model_registry.databricks_workspace_model_registry_rest_store import (
            DatabricksWorkspaceModelRegistryRestStore,
        )

        store = DatabricksWorkspaceModelRegistryRestStore(uri, tracking_uri)  # type: ignore[no-untyped-call]
    else:
        return None
    # MLflow sets both from the URIs with get_databricks_host_creds (the process's variables)
    store.get_host_creds = lambda: databricks_creds(uri, credentials)
    store.get_tracking_host_creds = lambda: (
        databricks_creds(tracking_uri, credentials)
        if is_databricks(tracking_uri)
        else host_creds(tracking_uri, credentials)
    )
    return store


def databricks_creds(uri: str, credentials: Credentials) -> Any:
    """MLflow's host credentials for a Databricks URI of a named registry: its own host and
    token (host_env, token_env), else the profile its URI names, read as MLflow reads it
    (~/.databrickscfg or DATABRICKS_CONFIG_FILE) with no other registry's DATABRICKS_HOST or
    DATABRICKS_TOKEN in the environment."""
    from mlflow.utils.databricks_utils import get_databricks_host_creds
    from mlflow.utils.rest_utils import MlflowHostCreds

    if credentials.host:
        return MlflowHostCreds(host=credentials.host, token=credentials.token)  # type: ignore[no-untyped-call]
    with credentials_env(credentials):
        return get_databricks_host_creds(uri)  # type: ignore[no-untyped-call]


def host_creds(uri: str, credentials: Credentials | None) -> Any:
    """MLflow's host credentials for this registry: its own user, password and token; the TLS
    and auth-plugin settings as the process has them. None: MLflow's variables."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import MlflowHostCreds

    base = get_default_host_creds(uri)  # type: ignore[no-untyped-call]
    if credentials is None:
        return base
    return MlflowHostCreds(  # type: ignore[no-untyped-call]
        host=uri,
        username=credentials.username,
        password=credentials.password,
        token=credentials.token,
        aws_sigv4=base.aws_sigv4,
        auth=base.auth,
        ignore_tls_verification=base.ignore_tls_verification,
        client_cert_path=base.client_cert_path,
        server_cert_path=base.server_cert_path,
    )


def _with_store(cls: type[T], store: Any) -> type[T]:
    """A subclass of an MLflow client whose `store` is this one (MLflow resolves it from the
    URI at every access, with the process's credentials)."""
    return type(cls.__name__, (cls,), {"store": property(lambda _: store)})


def sends_credentials(uri: str, credentials: Credentials | None) -> bool:
    """Whether a client of this registry sends credentials: its own, or (None) MLflow's
    variables, or a user in the URI."""
    in_uri = "@" in uri.split("/")[2] if "://" in uri else False
    if credentials is not None:
        return credentials.sends or in_uri
    variables = (*CREDENTIAL_VARIABLES, "MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_CLIENT_CERT_PATH")
    return any(os.environ.get(k) for k in variables) or in_uri
