"""Lending one registry's credentials and URI to MLflow, which otherwise reads them from the
process: REST stores that send this registry's own credentials (own_client), and, for MLflow's
artifact repositories and fluent functions, which read MLflow's variables and globals at every
request, the variables and globals set around the block and restored afterwards.

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
        saved = {key: os.environ.get(key) for key in CREDENTIAL_VARIABLES}
        try:
            _set_variables(credentials.variables())
            yield
        finally:
            _set_variables(saved)


@contextmanager
def mlflow_globals(uri: str, credentials: Credentials | None) -> Iterator[None]:
    """For MLflow's fluent functions (mlflow.register_model) and the resolution of a models:/
    location, which talk to the process-wide tracking and registry URIs with the variables'
    credentials: the block runs under the lock with this registry's URI as both globals (MLflow 3
    also writes MLFLOW_TRACKING_URI and MLFLOW_REGISTRY_URI) and its credentials; the previous
    globals and variables come back afterwards, so several registries never leave each other's
    URI behind."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with _ENV_LOCK, credentials_env(credentials):
        saved = {key: os.environ.get(key) for key in URI_VARIABLES}
        tracking, registry = tracking_utils._tracking_uri, registry_utils._registry_uri
        try:
            tracking_utils.set_tracking_uri(uri)
            registry_utils.set_registry_uri(uri)
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


def own_client(uri: str, credentials: Credentials | None) -> Any:
    """An MlflowClient for this URI alone, without touching MLflow's globals. With `credentials`
    (a tree's named registry) and an HTTP server, its REST stores send this registry's
    credentials and only them: MLflow's REST stores take a function for the host's credentials,
    which by default reads the process's MLFLOW_TRACKING_* variables at every request, so several
    registries read concurrently each get stores over their own (artifact transfers still read
    the variables: wrap them in credentials_env)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if credentials is None or not uri.startswith(("http://", "https://")):
        return client
    from mlflow.store.model_registry.rest_store import RestStore as RegistryStore
    from mlflow.store.tracking.rest_store import RestStore as TrackingStore
    from mlflow.tracking._model_registry.client import ModelRegistryClient
    from mlflow.tracking._tracking_service.client import TrackingServiceClient

    def creds() -> Any:
        return host_creds(uri, credentials)

    tracking = _with_store(TrackingServiceClient, TrackingStore(creds))  # type: ignore[no-untyped-call]
    registry = _with_store(ModelRegistryClient, RegistryStore(creds))  # type: ignore[no-untyped-call]
    client._tracking_client = tracking(uri)
    # MlflowClient keeps its registry client under this name, made on first use
    setattr(client, "_registry_client_lazy", registry(uri, uri))  # noqa: B010
    return client


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
