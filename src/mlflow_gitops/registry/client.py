"""The MLflow adapter: the only module that imports mlflow for registry work."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote_plus

from mlflow_gitops.errors import DENIED, GitopsError, LockError, PermissionDenied, RegistryError
from mlflow_gitops.observed import ModelState, RegistryState, RunSummary, VersionState
from mlflow_gitops.permissions import OPERATIONS, WHAT_NEEDS, Permission, current_user, holds
from mlflow_gitops.record import (
    AUDIT_EXPERIMENT,
    CHANGES_ARTIFACT,
    GATES_ARTIFACT,
    HOLDER_TAG,
    LEASE_TAG,
    LOCK_MODEL,
    LOCK_TAG,
    PROBE_TAG,
    REGISTRATION_TAG,
    RESULT_TAG,
    USER_TAG,
    AuditRun,
    RecordFinish,
    RecordStart,
    bucket_tag,
    changes_document,
    changes_from_document,
    context_from_tags,
    decode_bucket,
    encode_buckets,
    model_filter,
    start_tags,
)
from mlflow_gitops.registry.copy import (
    Credentials,
    SourceVersion,
    copy_version,
    credentials_env,
    describe_source,
    mlflow_globals,
)
from mlflow_gitops.registry.port import RegistryPort
from mlflow_gitops.registry.webhooks import MlflowWebhooks, WebhookPort
from mlflow_gitops.secrets import redact
from mlflow_gitops.settings import registry_identity

T = TypeVar("T")

# GET requests carry the filter in the URL, percent-encoded; gunicorn caps the request line at
# 4,094 bytes, and MLflow's filter parser (sqlparse) at 3,332 names per IN list
MAX_FILTER_URL_CHARS = 3500
MAX_FILTER_NAMES = 3000
# above this many IN-chunks, one unfiltered scan (1,000 models / 100,000 versions a page) is cheaper
MAX_FILTER_CHUNKS = 2
MODELS_PAGE = 1000
# MLflow 2.x servers refuse `name IN (...)`: up to this many models are read with one `name = '...'`
# search each for models and for versions (2 calls a model); more are read by one unfiltered scan
MAX_NAME_FILTERS = 5
PROMPT_TAG = "mlflow.prompt.is_prompt"
LOCK_WAIT_S = 120.0  # default deadline of a wait for the lock; WAIT_VARIABLE overrides it
WAIT_VARIABLE = "MLFLOW_GITOPS_LOCK_WAIT_S"
LOCK_PAUSE_S = 1.0  # between two tries: never a busy loop
LOCK_LEASE_S = 30.0
REGISTER_WAIT_S = 300  # until a new version is READY
CREDENTIAL_VARIABLES = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
VERSIONS_PAGE = 100_000

_HTTP_DEFAULTS = {
    # MLflow retries 5xx with exponential backoff for minutes by default; a reconciler in CI
    # should fail in seconds with a clear message instead (users may still override these)
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class MlflowRegistry:
    """RegistryPort over MlflowClient, for one tracking/registry URI."""

    def __init__(self, uri: str, credentials: Credentials | None = None) -> None:
        for key, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        self.uri = uri
        # this registry's own credentials: its REST stores send them (own_client), and they are
        # set around its file transfers (copy.credentials_env); None: MLflow's variables as the
        # process has them. MLflow's global URIs are left alone (copy.mlflow_globals)
        self.credentials = credentials
        with self._errors("connect to"):
            # several registries read concurrently each send their own credentials (own_client)
            self.client = own_client(uri, credentials)
            # MlflowClient re-reads the registered model before every write to refuse prompts
            # (one extra GET per write, half of all requests of an apply); the reader already
            # refuses prompts among the managed models, so writes go to the registry client
            self.writer = self.client._get_registry_client()
        self.calls = 0
        self._levels: dict[str, str] = {}  # model -> this user's MLflow permission, when told

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
        if self.credentials is not None:
            own = self.credentials
            return bool(own.username or own.token) or "@" in self.uri.split("/")[2]
        return _has_credentials(self.uri)

    @property
    def identity(self) -> str:
        """Which registry this is, without credentials (settings.registry_identity)."""
        return registry_identity(self.uri)

    def webhooks(self) -> WebhookPort:
        """The server's webhooks (MLflow 3.3+), over this adapter's client."""
        return MlflowWebhooks(self)

    # --- reading ------------------------------------------------------------------------------

    def read(self, names: Sequence[str] | None = None) -> RegistryState:
        """Registered models through search_registered_models, versions through paged
        search_model_versions; aliases come from the registered models because
        search_model_versions returns none. The filters are the cheapest this server accepts."""
        wanted = None if names is None else set(names)
        if wanted is not None and not wanted:
            return RegistryState(models={})
        with self._errors("read the registry at"):
            try:
                models, versions = self._read(wanted, _NO_NAME_IN.get(self.uri, False))
            except Exception as exc:
                if not _refuses_name_in(exc):
                    raise
                # an MLflow 2.x server: remembered for this process, read again without IN
                _NO_NAME_IN[self.uri] = True
                models, versions = self._read(wanted, True)
        prompts = sorted(n for n, m in models.items() if (m.tags or {}).get(PROMPT_TAG) == "true")
        if prompts and wanted is not None:
            raise RegistryError(
                f"{', '.join(prompts)} is an MLflow prompt, not a registered model",
                "mlflow-gitops manages registered models; remove it from registry.yaml",
            )
        models = {n: m for n, m in models.items() if n not in prompts}
        return RegistryState(
            models={
                name: ModelState(
                    name=name,
                    description=m.description or "",
                    tags=dict(m.tags or {}),
                    aliases={a: int(v) for a, v in (m.aliases or {}).items()},
                    versions=tuple(sorted(versions[name], key=lambda v: v.version)),
                    created_at=int(m.creation_timestamp or 0),
                )
                for name, m in sorted(models.items())
            }
        )

    def _read(
        self, wanted: set[str] | None, no_name_in: bool
    ) -> tuple[dict[str, Any], dict[str, list[VersionState]]]:
        """The registered models and their versions, with the filters `_filters` picks."""
        # the store, not MlflowClient: MLflow 3's client adds `tag.mlflow.prompt.is_prompt !=
        # 'true'` to every model search, which servers before 2.21 (no prompts) answer with no
        # model at all; prompts are told apart by their tag below
        store = self.writer.store
        chunks = _filters(wanted, no_name_in)
        models = {
            m.name: m
            for flt in chunks
            for m in self._pages(store.search_registered_models, flt, MODELS_PAGE)
            if (wanted is None and m.name != LOCK_MODEL) or (wanted and m.name in wanted)
        }
        versions: dict[str, list[VersionState]] = {name: [] for name in models}
        for flt in chunks if models else []:
            if flt is not None and flt.startswith("name = ") and flt[7:] not in _quoted(models):
                continue  # that model does not exist: no versions to ask for
            for v in self._pages(store.search_model_versions, flt, VERSIONS_PAGE):
                if v.name in versions:
                    versions[v.name].append(_version(v))
        return models, versions

    def _pages(self, search: Callable[..., Any], flt: str | None, size: int) -> Iterator[Any]:
        token = None
        while True:
            self.calls += 1
            page = search(filter_string=flt, max_results=size, page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def missing_runs(self, run_ids: Sequence[str]) -> set[str]:
        """Run ids the tracking server does not know (one get_run each: only new registrations)."""
        from mlflow.exceptions import MlflowException

        missing = set()
        for run_id in run_ids:
            try:
                with self._errors("look up runs at"):
                    self.calls += 1
                    self.client.get_run(run_id)
            except RegistryError as exc:
                if isinstance(exc.__cause__, MlflowException) and _not_found(exc.__cause__):
                    missing.add(run_id)
                else:
                    raise
        return missing

    def search_runs(
        self, experiment: str, filter_string: str, order_by: list[str], max_results: int
    ) -> list[RunSummary]:
        """The best runs of an experiment, in MLflow's own filter and order syntax."""
        from mlflow.exceptions import MlflowException

        with self._errors("search runs at"):
            self.calls += 1
            found = self.client.get_experiment_by_name(experiment)
        if found is None:
            raise RegistryError(
                f"no experiment named {experiment!r} at {redact(self.uri)}",
                "check the name (experiments are listed by `mlflow experiments search`)",
            )
        try:
            self.calls += 1
            runs = self.client.search_runs(
                [found.experiment_id],
                filter_string=filter_string,
                order_by=order_by,
                max_results=max_results,
            )
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "INVALID_PARAMETER_VALUE":
                raise self._translate(exc, "search runs at") from exc
            raise RegistryError(f"MLflow refused the search: {redact(exc.message)}", "") from None
        return [
            RunSummary(
                run_id=r.info.run_id,
                metrics=dict(r.data.metrics),
                tags=dict(r.data.tags),
                params=dict(r.data.params),
                start_time=int(r.info.start_time or 0),
                end_time=int(r.info.end_time or 0),
            )
            for r in runs
        ]

    # --- the apply lock -------------------------------------------------------------------------

    @contextmanager
    def lock(self, holder: str) -> Iterator[None]:
        """One apply at a time: a registered model named LOCK_MODEL exists while an apply runs.
        Creating a registered model is atomic in every MLflow store (a unique name), so it works
        as a mutex across machines. The holder renews a lease every LOCK_LEASE_S / 3 seconds; a
        lock whose lease ran out (a killed apply, or one that lost the registry) is broken. Every
        wait pauses LOCK_PAUSE_S between tries and ends at the deadline (lock_wait_s())."""
        from mlflow.exceptions import MlflowException

        token = uuid.uuid4().hex
        deadline = time.monotonic() + lock_wait_s()
        tags = {LOCK_TAG: token, HOLDER_TAG: holder[:200]}
        user = self._username()
        if user:
            tags[USER_TAG] = user[:200]  # who may delete it besides an admin (basic-auth)
        while True:
            try:
                self.calls += 1
                self.client.create_registered_model(
                    LOCK_MODEL,
                    tags={**tags, LEASE_TAG: f"{time.time() + LOCK_LEASE_S:.0f}"},
                    description="Held by a running `mlflow-gitops apply`; deleted when it ends.",
                )
                break
            except MlflowException as exc:
                if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                    raise self._lock_error(exc, "create") from exc
            held = self._lock_holder()
            if held is not None and held.token == token:
                break  # our own create succeeded; its answer was lost and MLflow retried it
            if held is not None and held.readable and held.lease_until < time.time():
                self._break_lock(held)  # the holder stopped renewing: killed, or cut off
            if time.monotonic() > deadline:
                raise self._lock_timeout(held)
            time.sleep(LOCK_PAUSE_S)
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(stop,), daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join(timeout=5)
            self._release_lock()

    def _renew(self, stop: threading.Event) -> None:
        while not stop.wait(LOCK_LEASE_S / 3):
            try:
                self.writer.set_registered_model_tag(
                    LOCK_MODEL, LEASE_TAG, f"{time.time() + LOCK_LEASE_S:.0f}"
                )
            except Exception:  # a missed renewal only shortens the lease
                continue

    def _lock_holder(self) -> _Lock | None:
        """The lock as the registry has it; None when it is gone (released meanwhile)."""
        from mlflow.exceptions import MlflowException

        try:
            self.calls += 1
            m = self.client.get_registered_model(LOCK_MODEL)
        except MlflowException as exc:
            if _denied(exc):
                return _Lock(readable=False)  # it exists, but who holds it is hidden from us
            if _not_found(exc):
                return None
            raise self._lock_error(exc, "read") from exc
        tags = dict(m.tags or {})
        try:
            lease_until = float(tags.get(LEASE_TAG, "0"))
        except ValueError:
            lease_until = 0.0
        return _Lock(
            readable=True,
            token=tags.get(LOCK_TAG, ""),
            holder=tags.get(HOLDER_TAG, "?"),
            user=tags.get(USER_TAG, ""),
            lease_until=lease_until,
        )

    def _break_lock(self, held: _Lock) -> None:
        """Delete a lock whose lease ran out; a refusal ends the wait with who may delete it."""
        from mlflow.exceptions import MlflowException

        try:
            self.calls += 1
            self.writer.delete_registered_model(LOCK_MODEL)
        except MlflowException as exc:
            if _not_found(exc):
                return  # someone else broke or released it meanwhile
            if _denied(exc):
                since = datetime.fromtimestamp(held.lease_until, UTC).strftime("%Y-%m-%d %H:%M:%S")
                owner = f"the MLflow user '{held.user}'" if held.user else "the user who made it"
                raise LockError(
                    f"the apply lock at {redact(self.uri)} is held by {held.describe()}, whose "
                    f"lease ran out at {since} UTC (that apply was killed or lost the registry); "
                    f"{self.user} may not delete it: deleting the registered model "
                    f"{LOCK_MODEL} needs MANAGE on it (403); nothing was applied",
                    f"{owner} or an MLflow admin may delete the registered model {LOCK_MODEL} "
                    f"(or grant MANAGE on it); then run apply again",
                ) from None
            raise self._lock_error(exc, "delete") from exc

    def _release_lock(self) -> None:
        """Delete our own lock; what cannot be deleted is said, with what it blocks."""
        from mlflow.exceptions import MlflowException

        try:
            self.calls += 1
            self.writer.delete_registered_model(LOCK_MODEL)
        except MlflowException as exc:
            if _not_found(exc):
                return  # already gone (broken by another apply after a lost lease)
            raise LockError(
                f"the apply ended but could not delete its apply lock, the registered model "
                f"{LOCK_MODEL} at {redact(self.uri)} ({_first_line(exc)[:200]})",
                f"its lease runs out {LOCK_LEASE_S:.0f} s after the apply ended; then an apply "
                f"by the same MLflow user or an admin breaks it (or delete it by hand)",
            ) from exc

    def _lock_error(self, exc: Exception, verb: str) -> RegistryError:
        if _denied(exc):
            need = {"create": "the right to create registered models", "read": "READ"}.get(
                verb, "MANAGE"
            )
            return LockError(
                f"{self.user} may not {verb} the apply lock, the registered model "
                f"{LOCK_MODEL} at {redact(self.uri)} (403: it needs {need}); nothing was applied",
                f"ask an MLflow admin for {need}"
                + (f" on {LOCK_MODEL}" if verb != "create" else "")
                + ", or apply as a user who has it",
            )
        return self._translate(exc, f"{verb} the apply lock at")

    def _lock_timeout(self, held: _Lock | None) -> RegistryError:
        waited = f"{lock_wait_s():.0f} s"
        where = f"the registered model {LOCK_MODEL} at {redact(self.uri)}"
        if held is not None and not held.readable:
            return LockError(
                f"the apply lock ({where}) stayed taken for {waited}, and {self.user} may "
                f"not read it (403: reading a registered model needs READ), so who holds it and "
                f"whether its lease ran out are unknown; nothing was applied",
                f"ask an MLflow admin to grant READ on {LOCK_MODEL} (or default_permission = "
                f"READ); if no apply is running, its maker or an admin may delete it",
            )
        if held is None:
            return LockError(
                f"could not take the apply lock ({where}) within {waited}: other applies kept "
                "taking it; nothing was applied",
                f"run apply again (wait longer with {WAIT_VARIABLE}=<seconds>)",
            )
        until = datetime.fromtimestamp(held.lease_until, UTC).strftime("%H:%M:%S")
        return LockError(
            f"another apply holds the registry's apply lock ({held.describe()}, lease renewed "
            f"until {until} UTC) and did not release it within {waited}; nothing was applied",
            f"wait and run apply again (or wait longer with {WAIT_VARIABLE}=<seconds>); a holder "
            f"that stops renewing its lease loses it after {LOCK_LEASE_S:.0f} s (the lock is "
            f"{where})",
        )

    # --- permissions (servers with authentication) ----------------------------------------------

    def can(self, name: str, permission: Permission) -> bool:
        """Whether this user holds `permission` on the registered model, asked in ways that
        change nothing. A server whose basic-auth answers a user's own permission (MLflow 3:
        /api/3.0/mlflow/users/permissions/get) is asked that; otherwise calls that basic-auth
        checks before the store runs them: READ gets the model, EDIT deletes a model tag no one
        sets (a no-op in MLflow's stores, and no webhook), MANAGE reads the model's permission
        list (MLflow 2.x: MANAGE only). True where the registry has no permissions."""
        if not self.uri.startswith(("http://", "https://")) or not self._sends_credentials():
            return True  # without credentials a server with authentication refuses everything
        user = self._username()
        if user and name not in self._levels:
            answer = self._http(
                "GET",
                "/api/3.0/mlflow/users/permissions/get",
                {"username": user, "resource_type": "registered_model", "resource_id": name},
            )
            ok = answer[0] == 200 and "permission" in answer[1]
            self._levels[name] = str(answer[1]["permission"]) if ok else ""
        if self._levels.get(name):
            return holds(self._levels[name], permission)
        if permission == "MANAGE":
            if not user:
                return True  # no way to ask without a username: the write itself will say
            answer = self._http(
                "GET",
                "/api/2.0/mlflow/registered-models/permissions/get",
                {"name": name, "username": user},
            )
            return answer[0] != 403
        from mlflow.exceptions import MlflowException

        try:
            self.calls += 1
            if permission == "READ":
                self.client.get_registered_model(name)
            else:
                self.writer.delete_registered_model_tag(name, PROBE_TAG)
        except MlflowException as exc:
            if _denied(exc):
                return False
            if _not_found(exc):
                return True  # absent: creating it needs no permission on it
            raise self._translate(exc, f"check permissions on '{name}' at") from exc
        return True

    def can_record(self) -> bool:
        """Whether this user may create runs in the audit experiment (EDIT on it). Asked where
        basic-auth answers a user's own permission (MLflow 3); an experiment that does not exist
        yet is created by this apply, and its creator may write it."""
        if not self.uri.startswith(("http://", "https://")) or not self._sends_credentials():
            return True
        user = self._username()
        if not user:
            return True
        from mlflow.exceptions import MlflowException

        try:
            self.calls += 1
            found = self.client.get_experiment_by_name(AUDIT_EXPERIMENT)
        except MlflowException as exc:
            if _denied(exc):
                return False
            raise self._translate(exc, "check permissions on the audit record at") from exc
        if found is None:
            return True
        status, body = self._http(
            "GET",
            "/api/3.0/mlflow/users/permissions/get",
            {"username": user, "resource_type": "experiment", "resource_id": found.experiment_id},
        )
        if status == 200 and "permission" in body:
            return holds(str(body["permission"]), "EDIT")
        return True  # an older server: opening the run under the lock will tell

    def _http(self, method: str, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """One raw REST call with MLflow's credentials: (status, JSON object or {}). A 401 is an
        error."""
        from mlflow.utils.rest_utils import http_request

        try:
            self.calls += 1
            answer = http_request(  # type: ignore[no-untyped-call]
                self._host_creds(),
                path,
                method,
                params=params,
                max_retries=0,
            )
        except Exception as exc:
            raise self._translate(exc, "check permissions at") from exc
        if answer.status_code == 401:
            raise self._translate(RegistryError("error code 401"), "check permissions at") from None
        try:
            body = answer.json()
        except ValueError:
            body = {}
        return int(answer.status_code), body if isinstance(body, dict) else {}

    # --- writing ------------------------------------------------------------------------------

    def create_model(self, name: str) -> None:
        self._call("create model", name, lambda: self.client.create_registered_model(name))

    def register_version(self, name: str, source: str, run_id: str | None) -> int:
        import mlflow

        # MLflow retries every method, POST included: when the answer to create-model-version is
        # lost (dropped connection, timeout) the retry registers the source a second time, and the
        # file's reference then matches two versions for ever. A one-off token tag marks every copy
        # this call made; the copies other than the one MLflow returned are deleted.
        token = uuid.uuid4().hex
        # mlflow.register_model resolves runs:/<id>/<path> the MLflow 3 way (run artifacts or a
        # logged model) and waits until the version is READY
        number: int | None = None
        denied: PermissionDenied | None = None
        try:

            def register() -> Any:
                # mlflow.register_model talks to the global registry with the variables' creds:
                # both are this registry's for the requests that create the version only; the
                # wait until READY reads through this adapter's own client, outside the lock
                with mlflow_globals(self.uri, self.credentials):
                    mv = mlflow.register_model(
                        source, name, await_registration_for=0, tags={REGISTRATION_TAG: token}
                    )
                self.writer.store._await_model_version_creation(mv, REGISTER_WAIT_S)
                return mv

            mv = self._call("register version", name, register)
            number = int(mv.version)
        except PermissionDenied as exc:
            # MLflow 3 then links the new version on the run's logged model, which needs EDIT on
            # the run's experiment: a version this call made means only that link is missing
            denied = exc
        except RegistryError as exc:
            # no MLmodel at runs:/<id>/<path>: MLflow 3 then looks for a logged model, through an
            # endpoint MLflow 2.x servers do not have (404)
            if "/logged-models" in str(exc.__cause__) and "404" in str(exc.__cause__):
                raise RegistryError(
                    # short: the apply's result shows the first 200 characters
                    "the run has no model (MLmodel) at that artifact path; check the path after "
                    "the run id in the `run:` entry (default `model`). An MLflow 2.x server has "
                    "no logged models to look in",
                ) from exc
            raise
        with self._errors("register version at"):
            made = sorted(
                int(v.version)
                for v in self._pages(
                    self.client.search_model_versions, f"name = {_quote(name)}", VERSIONS_PAGE
                )
                if (v.tags or {}).get(REGISTRATION_TAG) == token
            )
        if number is None:
            if denied is not None and not made:
                raise denied
            number = made[0]
        copies = [v for v in made if v != number]
        for copy in copies:
            self.delete_version(name, copy)
        # deleting a version tag needs MANAGE; with EDIT the one-off token stays (harmless)
        with suppress(PermissionDenied):
            self.delete_version_tag(name, number, REGISTRATION_TAG)
        return number

    def set_model_description(self, name: str, text: str) -> None:
        self._call("set description", name, lambda: self.writer.update_registered_model(name, text))

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self._call("set tag", name, lambda: self.writer.set_registered_model_tag(name, key, value))

    def delete_model_tag(self, name: str, key: str) -> None:
        self._call(
            "delete model tag", name, lambda: self.writer.delete_registered_model_tag(name, key)
        )

    def set_version_description(self, name: str, version: int, text: str) -> None:
        self._call(
            "set description",
            name,
            lambda: self.writer.update_model_version(name, str(version), text),
            version,
        )

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self._call(
            "set tag",
            name,
            lambda: self.writer.set_model_version_tag(name, str(version), key, value),
            version,
        )

    def delete_version_tag(self, name: str, version: int, key: str) -> None:
        self._call(
            "delete version tag",
            name,
            lambda: self.writer.delete_model_version_tag(name, str(version), key),
            version,
        )

    def transition_stage(
        self, name: str, version: int, stage: str, archive_others: bool = False
    ) -> None:
        # archiving is planned (archive_previous); the planner asks for archive_others only when
        # every other holder leaves the stage in the same plan
        self._call(
            "transition stage",
            name,
            lambda: self.writer.transition_model_version_stage(
                name, str(version), stage, archive_existing_versions=archive_others
            ),
            version,
        )

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._call(
            "set alias",
            name,
            lambda: self.writer.set_registered_model_alias(name, alias, str(version)),
        )

    def delete_alias(self, name: str, alias: str) -> None:
        self._call(
            "delete alias", name, lambda: self.writer.delete_registered_model_alias(name, alias)
        )

    def delete_version(self, name: str, version: int) -> None:
        self._call(
            "delete version",
            name,
            lambda: self.writer.delete_model_version(name, str(version)),
            version,
        )

    # --- promotion across registries (registry/copy.py) ----------------------------------------

    def describe_source(self, model: str, version: int) -> SourceVersion:
        return describe_source(self, model, version)

    def copy_version(
        self, source: RegistryPort, src_model: str, src_version: int, dest_model: str
    ) -> int:
        if not isinstance(source, MlflowRegistry):
            raise RegistryError(
                f"cannot copy {src_model}/{src_version} into {dest_model} at "
                f"{redact(self.uri)}: its source registry is not an MLflow registry "
                f"({type(source).__name__}); nothing was registered",
                "name an MLflow registry as the source of `copy_from:`",
            )
        return copy_version(self, source, src_model, src_version, dest_model)

    # --- errors -------------------------------------------------------------------------------

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
    ) -> Iterator[None]:
        try:
            yield
        except GitopsError:
            raise
        except Exception as exc:
            raise self._translate(
                exc, doing, operation=operation, model=model, version=version
            ) from exc

    def _translate(
        self,
        exc: Exception,
        doing: str,
        *,
        operation: str | None = None,
        model: str | None = None,
        version: int | None = None,
    ) -> RegistryError:
        """The error a user reads, naming this registry's user and its credential variables."""
        return _translate(
            exc,
            doing,
            self.uri,
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

    # --- the audit record: one run per apply in the audit experiment ---------------------------

    def start_record(self, start: RecordStart) -> str:
        """Create the audit run with its context and one tag per model it may touch, so the run is
        found by `history` even if the apply is cut off before it finishes."""
        doing = f"write the audit record (experiment {AUDIT_EXPERIMENT}) at"
        with self._errors(doing):
            experiment = self._audit_experiment(create=True)
            assert experiment is not None
            self.calls += 1
            # create-run takes any number of tags in one request (log_batch takes 100)
            run = self.client.create_run(
                experiment,
                start_time=int(start.started_at.timestamp() * 1000),
                tags=start_tags(start),
                run_name=f"apply {start.started_at:%Y-%m-%d %H:%M:%S}",
            )
        return str(run.info.run_id)

    def finish_record(self, run_id: str, finish: RecordFinish) -> None:
        """Each model's changes as its tag, changes.json and gates.json, then end the run."""
        from mlflow.entities import RunStatus

        tags = encode_buckets(finish.changes)
        tags[RESULT_TAG] = "applied" if finish.ok else "failed"
        # MLflow 3 prints the run's URL to stdout when a run ends on a server: not in our output
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        with self._errors(f"finish the audit run {run_id} (experiment {AUDIT_EXPERIMENT}) at"):
            self._log_tags(run_id, tags)
            with tempfile.TemporaryDirectory() as folder:
                for name, doc in (
                    (CHANGES_ARTIFACT, changes_document(finish)),
                    (GATES_ARTIFACT, {"gates": list(finish.gates)}),
                ):
                    with open(os.path.join(folder, name), "w", encoding="utf-8") as fh:
                        json.dump(doc, fh, indent=2, sort_keys=True)
                self.calls += 3  # the run's artifact location, then one upload per file
                # the files travel through MLflow's artifact repositories, which read the
                # credential variables: this registry's own are set around the upload only
                with credentials_env(self.credentials):
                    self.client.log_artifacts(run_id, folder)
            self.calls += 1
            status = RunStatus.FINISHED if finish.ok else RunStatus.FAILED
            self.client.set_terminated(run_id, RunStatus.to_string(status))

    def read_records(self, names: Sequence[str]) -> dict[str, tuple[AuditRun, ...]]:
        """One paged search_runs per model, filtered on the model's tag (MLflow 2.x and 3)."""
        out: dict[str, tuple[AuditRun, ...]] = dict.fromkeys(names, ())
        with self._errors(f"read the audit record (experiment {AUDIT_EXPERIMENT}) at"):
            experiment = self._audit_experiment(create=False)
            if experiment is None:
                return out
            for name in names:
                runs = []
                token = None
                while True:
                    self.calls += 1
                    page = self.client.search_runs(
                        [experiment],
                        filter_string=model_filter(name),
                        max_results=RUNS_PAGE,
                        order_by=["attributes.start_time ASC"],
                        page_token=token,
                    )
                    runs += [r for r in (self._audit_run(r, name) for r in page) if r]
                    token = page.token
                    if not token:
                        break
                out[name] = tuple(runs)
        return out

    def _audit_experiment(self, create: bool) -> str | None:
        return self._experiment(AUDIT_EXPERIMENT, "the audit experiment", create)

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
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        self.calls += 1
        again = self.client.get_experiment_by_name(name)
        assert again is not None
        return str(again.experiment_id)

    def _log_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in tags.items()]
        for i in range(0, len(items), RUN_TAGS_PER_CALL):
            self.calls += 1
            self.client.log_batch(run_id, tags=items[i : i + RUN_TAGS_PER_CALL])

    def _audit_run(self, run: Any, name: str) -> AuditRun | None:
        tags = dict(run.data.tags)
        touched, changes = decode_bucket(tags.get(bucket_tag(name), ""), name)
        if not touched:
            return None
        if changes is None:  # too many to fit in a tag: read them from the artifact
            with tempfile.TemporaryDirectory() as folder:
                self.calls += 1
                with credentials_env(self.credentials):  # an artifact repository: see above
                    path = self.client.download_artifacts(run.info.run_id, CHANGES_ARTIFACT, folder)
                with open(path, encoding="utf-8") as fh:
                    changes = changes_from_document(json.load(fh), name)
        return AuditRun(
            run_id=str(run.info.run_id),
            started_at=int(run.info.start_time or 0),
            context=context_from_tags(tags),
            status=str(run.info.status),
            changes=changes,
        )


def _translate(
    exc: Exception,
    doing: str,
    uri: str,
    *,
    operation: str | None = None,
    model: str | None = None,
    version: int | None = None,
    who: str,
    hint: str,
) -> RegistryError:
    """`who`: the user the refused request acted as; `hint`: which credentials to check."""
    text = redact(_first_line(exc))
    where = redact(uri)
    if "out-of-date database schema" in str(exc):
        return RegistryError(
            f"the registry database at {where} was created by an older MLflow",
            f"back it up, then run `mlflow db upgrade {where}`",
        )
    if _unauthenticated(exc):
        return RegistryError(
            f"cannot {doing} {where}: the registry refused the credentials (401 Unauthenticated)",
            hint,
        )
    if _denied(exc):
        return _permission_denied(doing, where, operation, model, version, who)
    name = type(exc).__name__
    if name in ("ConnectionError", "MaxRetryError", "NewConnectionError", "Timeout") or (
        "Max retries exceeded" in str(exc) or "Connection refused" in str(exc)
    ):
        return RegistryError(
            f"cannot {doing} {where}: the registry is unreachable ({text[:200]})",
            "check the tracking URI and that the server is up; nothing was changed by this step",
        )
    return RegistryError(f"cannot {doing} {where}: {text[:500]}", "")


def _permission_denied(
    doing: str,
    where: str,
    operation: str | None,
    model: str | None,
    version: int | None,
    who: str,
) -> PermissionDenied:
    """A 403: the operation, the model, and the MLflow permission it needs."""
    need = OPERATIONS.get(operation or "")
    if model is None:
        return PermissionDenied(
            f"{DENIED}: {who} may not {doing} {where}",
            "ask an MLflow admin for the permission, or run as a user who has it",
        )
    target = f"registered model '{model}'" + (f" (version {version})" if version else "")
    needs = f" needs {need}" if need else " is not allowed"
    return PermissionDenied(
        f"{DENIED}: {operation or doing}{needs} on {target}, which {who} lacks at {where}",
        f"ask an MLflow admin to grant {need or 'it'} on '{model}', or apply as a user who "
        f"holds it ({WHAT_NEEDS}); applying again as the same user will not help",
    )


def own_client(uri: str, credentials: Credentials | None) -> Any:
    """An MlflowClient for this URI alone, without touching MLflow's globals. With `credentials`
    (a tree's named registry) and an HTTP server, its REST stores send this registry's
    credentials and only them: MLflow's REST stores take a function for the host's credentials,
    which by default reads the process's MLFLOW_TRACKING_* variables at every request, so several
    registries read concurrently each get stores over their own (artifact transfers still read
    the variables: wrap them in copy.credentials_env)."""
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


def _has_credentials(uri: str) -> bool:
    """Whether this client sends credentials (variables, or a user in the URI)."""
    variables = (*CREDENTIAL_VARIABLES, "MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_CLIENT_CERT_PATH")
    return any(os.environ.get(k) for k in variables) or "@" in uri.split("/")[2]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _denied(exc: Exception) -> bool:
    """A 403 from the server (basic-auth's "Permission denied")."""
    return getattr(exc, "error_code", "") == "PERMISSION_DENIED" or ("error code 403" in str(exc))


def _unauthenticated(exc: Exception) -> bool:
    """A 401: no credentials, or wrong ones."""
    return getattr(exc, "error_code", "") == "UNAUTHENTICATED" or "error code 401" in str(exc)


def lock_wait_s() -> float:
    """How long an apply waits for the lock: WAIT_VARIABLE, or LOCK_WAIT_S."""
    raw = os.environ.get(WAIT_VARIABLE, "")
    try:
        return max(0.0, float(raw)) if raw else LOCK_WAIT_S
    except ValueError:
        raise RegistryError(
            f"{WAIT_VARIABLE}={raw!r} is not a number of seconds", f"e.g. {WAIT_VARIABLE}=300"
        ) from None


@dataclass(frozen=True)
class _Lock:
    """The apply lock as read back: unreadable when the user may not read it."""

    readable: bool
    token: str = ""
    holder: str = ""
    user: str = ""
    lease_until: float = 0.0

    def describe(self) -> str:
        who = f", MLflow user '{self.user}'" if self.user else ""
        return f"{redact(self.holder)}{who}"


def _not_found(exc: Any) -> bool:
    return getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or (
        "not found" in str(exc).lower()
    )


def _version(v: Any) -> VersionState:
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


def _quote(name: str) -> str:
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


# tracking URIs whose server refused `name IN (...)` (MLflow 2.x) in this process
_NO_NAME_IN: dict[str, bool] = {}
# MLflow 2.x's SearchUtils answer to `name IN (...)`, in search_registered_models and
# search_model_versions alike (2.9 to 2.22)
_NAME_IN_REFUSAL = "Only the 'run_id' attribute supports comparison with a list of quoted string"


def _refuses_name_in(exc: Exception) -> bool:
    """True for exactly MLflow 2.x's refusal of `name IN (...)`, and no other error."""
    return getattr(exc, "error_code", "") == "INVALID_PARAMETER_VALUE" and (
        _NAME_IN_REFUSAL in str(getattr(exc, "message", exc))
    )


def _filters(wanted: set[str] | None, no_name_in: bool) -> list[str | None]:
    """The filter of each search (None: unfiltered), the same for models and versions.

    MLflow 3: `name IN (...)` chunks, or one unfiltered scan above MAX_FILTER_CHUNKS chunks.
    MLflow 2.x (no IN on names): `name = '...'` per model up to MAX_NAME_FILTERS models (2 calls
    each, answers as small as the models), else one unfiltered paged scan (2 calls up to 1,000
    models and 100,000 versions), which is cheaper in calls than 2 per model from there on."""
    if wanted is None:
        return [None]
    names = sorted(wanted)
    if no_name_in:
        if len(names) > MAX_NAME_FILTERS:
            return [None]
        return [f"name = {_quote(name)}" for name in names]
    chunks: list[str | None] = list(_in_chunks(names))
    return chunks if len(chunks) <= MAX_FILTER_CHUNKS else [None]


def _quoted(names: dict[str, Any]) -> set[str]:
    return {_quote(name) for name in names}


def _in_chunks(names: list[str]) -> list[str]:
    """`name IN (...)` filters, each short enough for a URL once percent-encoded (gunicorn caps
    the request line at 4,094 bytes) and under MLflow's filter parser's 3,332 names."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    separator = len(quote_plus(", "))
    for name in names:
        quoted = _quote(name)
        cost = len(quote_plus(quoted)) + separator
        if current and (size + cost > MAX_FILTER_URL_CHARS or len(current) >= MAX_FILTER_NAMES):
            chunks.append(f"name IN ({', '.join(current)})")
            current, size = [], 0
        current.append(quoted)
        size += cost
    if current:
        chunks.append(f"name IN ({', '.join(current)})")
    return chunks


RUN_TAGS_PER_CALL = 100  # MLflow's limit of tags per log_batch
RUNS_PAGE = 1000
