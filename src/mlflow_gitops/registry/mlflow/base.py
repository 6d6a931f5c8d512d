"""One connection to an MLflow registry: its URI, its credentials, the clients that send them,
who its requests act as, and the error mapping every call goes through. Each capability of the
adapter (reads, writes, permission probes, the lock's and the audit record's primitives, copies)
is a mixin over this class; the gate evidence opens one per registry it reads."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from mlflow_gitops.credentials import CREDENTIAL_VARIABLES, Credentials
from mlflow_gitops.errors import GitopsError, RegistryError
from mlflow_gitops.observed import VersionState
from mlflow_gitops.permissions import current_user
from mlflow_gitops.record import default_audit_experiment
from mlflow_gitops.registry.mlflow.env import (
    host_creds,
    mlflow_globals,
    own_client,
    sends_credentials,
)
from mlflow_gitops.registry.mlflow.errors import error_code, translate
from mlflow_gitops.registry.mlflow.schema import check_schema
from mlflow_gitops.settings import Endpoint, registry_identity

T = TypeVar("T")

_HTTP_DEFAULTS = {
    # MLflow retries 5xx with exponential backoff for minutes by default; a reconciler in CI
    # should fail in seconds with a clear message instead (users may still override these)
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class Connection:
    """MlflowClient for one registry: its tracking URI (runs, the apply lock, the audit record)
    and its registry URI (the models), with this registry's own credentials. `where` is an
    Endpoint, or a URI that is the tracking URI with MLflow's default registry URI for it and
    `credentials` (None: MLflow's variables)."""

    def __init__(self, where: str | Endpoint, credentials: Credentials | None = None) -> None:
        for key, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        endpoint = where if isinstance(where, Endpoint) else Endpoint(where, "", credentials)
        self.endpoint = endpoint
        self.uri = endpoint.registry_uri  # where the models live: messages about them name it
        self.tracking_uri = endpoint.tracking_uri
        self.audit_experiment = endpoint.audit_experiment or default_audit_experiment(
            endpoint.tracking_uri
        )
        # this registry's own credentials: its REST stores send them (env.own_client), and they
        # are set around its file transfers (env.credentials_env); None: MLflow's variables as
        # the process has them. MLflow's global URIs are left alone (env.mlflow_globals)
        self.credentials = endpoint.credentials
        for uri in dict.fromkeys((self.tracking_uri, self.uri)):
            check_schema(uri)  # before MLflow's store opens (and would upgrade) an older database
        with self._errors("connect to"):
            # several registries read concurrently each send their own credentials (own_client)
            self.client = own_client(endpoint)
            # MlflowClient re-reads the registered model before every write to refuse prompts
            # (one extra GET per write, half of all requests of an apply); the reader already
            # refuses prompts among the managed models, so writes go to the registry client
            self.writer = self.client._get_registry_client()
        self._tracking_registry: Any = None
        self.calls = 0

    @property
    def tracking_registry(self) -> Any:
        """A registry client of the tracking server, for the apply lock (a registered model
        there, beside the audit record): the registry client itself when the models live in
        the tracking server, else the tracking server's own registry (a Databricks workspace's
        registry beside its Unity Catalog)."""
        if self.tracking_uri == self.uri:
            return self.writer
        if self._tracking_registry is None:
            with self._errors("connect to", at=self.tracking_uri):
                same = Endpoint(self.tracking_uri, self.tracking_uri, self.credentials)
                self._tracking_registry = own_client(same)._get_registry_client()
        return self._tracking_registry

    def mlflow_globals(self) -> AbstractContextManager[None]:
        """MLflow's global URIs and variables set to this registry's for the block
        (env.mlflow_globals): its tracking URI, its registry URI and its credentials."""
        return mlflow_globals(self.tracking_uri, self.credentials, self.uri)

    def _host_creds(self) -> Any:
        return host_creds(self.uri, self.credentials)

    def _username(self) -> str | None:
        """The user this adapter acts as (not a secret)."""
        if self.credentials is not None:
            return self.credentials.username
        return os.environ.get("MLFLOW_TRACKING_USERNAME")

    @property
    def user(self) -> str:
        """Who this registry's requests act as, for messages: this registry's own user (a tree's
        named registry), else MLflow's variables as the process has them (current_user)."""
        own = self.credentials
        if own is None:
            return current_user()
        if own.username:
            return f"user '{own.username}'"
        if own.token:
            return "the user of this registry's token"
        return "this client (this registry is given no credentials)"

    def _sends_credentials(self) -> bool:
        return sends_credentials(self.uri, self.credentials)

    @property
    def identity(self) -> str:
        """Which registry this is (where its models live), without credentials
        (settings.registry_identity of the registry URI)."""
        return registry_identity(self.uri)

    # --- errors: every call to MLflow ends here ----------------------------------------------

    def _call(self, what: str, name: str, fn: Callable[[], T], version: int | None = None) -> T:
        with self._errors(what + " at", operation=what, model=name, version=version):
            self.calls += 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # stages are deprecated since MLflow 2.9
                return fn()

    @contextmanager
    def _errors(
        self,
        doing: str,
        *,
        operation: str | None = None,
        model: str | None = None,
        version: int | None = None,
        at: str | None = None,
    ) -> Iterator[None]:
        try:
            yield
        except GitopsError:
            raise
        except Exception as exc:
            raise self._translate(
                exc, doing, operation=operation, model=model, version=version, at=at
            ) from exc

    def _translate(
        self,
        exc: BaseException,
        doing: str,
        *,
        operation: str | None = None,
        model: str | None = None,
        version: int | None = None,
        at: str | None = None,
    ) -> RegistryError:
        """The error a user reads, naming this registry's user and its credential variables;
        `at`: the URI the failed call went to (default: the registry URI; the tracking URI for
        runs, the lock and the audit record)."""
        return translate(
            exc,
            doing,
            at or self.uri,
            operation=operation,
            model=model,
            version=version,
            who=self.user,
            hint=self._credentials_hint(),
        )

    def _credentials_hint(self) -> str:
        """What to check after a 401: this registry's own variables, else MLflow's."""
        own = self.credentials
        if own is None:
            given = [k for k in CREDENTIAL_VARIABLES if os.environ.get(k)]
            return (
                "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic-auth) or "
                "MLFLOW_TRACKING_TOKEN (a bearer token); "
                + (f"set now: {', '.join(given)}" if given else "none of them is set")
            )
        if own.source:
            return f"check this registry's credentials: {', '.join(own.source)}"
        return (
            "check the variables this registry's `registries:` entry names (username_env and "
            "password_env, or token_env)"
        )

    # --- helpers the capabilities share --------------------------------------------------------

    def _pages(self, search: Callable[..., Any], flt: str | None, size: int) -> Iterator[Any]:
        yield from pages(search, flt, size, self._count)

    def _count(self) -> None:
        self.calls += 1

    def _experiment(self, name: str, what: str, create: bool) -> str | None:
        """The id of the experiment the tool writes its runs to (created when absent and asked
        to); a deleted one is an error that says how to restore it."""
        from mlflow.exceptions import MlflowException

        self.calls += 1
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage != "active":
                raise RegistryError(
                    f"{what} {name} is deleted",
                    f"restore it (`mlflow experiments restore --experiment-id "
                    f"{found.experiment_id}`); nothing was applied",
                )
            return str(found.experiment_id)
        if not create:
            return None
        try:
            self.calls += 1
            return str(self.client.create_experiment(name))
        except MlflowException as exc:
            if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                raise
        self.calls += 1
        again = self.client.get_experiment_by_name(name)
        assert again is not None
        return str(again.experiment_id)


def pages(
    search: Callable[..., Any], flt: str | None, size: int, tick: Callable[[], None]
) -> Iterator[Any]:
    """Every item of an MLflow search, page after page; `tick` is called before each request."""
    token = None
    while True:
        tick()
        page = search(filter_string=flt, max_results=size, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def version_state(v: Any) -> VersionState:
    """An MLflow ModelVersion as the value everything above the adapter sees."""
    return VersionState(
        version=int(v.version),
        stage=v.current_stage or "None",
        source=v.source or "",
        run_id=v.run_id or None,
        description=v.description or "",
        tags=dict(v.tags or {}),
        status=str(v.status or "READY"),
        created_at=int(v.creation_timestamp or 0),
        updated_at=int(v.last_updated_timestamp or 0),
    )


def quote(name: str) -> str:
    """A name as a quoted string in MLflow's filter syntax."""
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"
