"""Databricks Unity Catalog through MLflow's own `databricks-uc` client: whether this registry is
one, and how its state is read there.

UC's model search takes no filter and returns models without tags or aliases; its version search
takes exactly one condition (`name = '...'` or `run_id = '...'`) and MLflow's client drops the tags
of the versions it returns (mlflow/utils/_unity_catalog_utils.py, *_search_from_uc_proto). So each
declared model is read on its own: get_registered_model (description, tags, aliases), one
`name = '...'` version search per page, and get_model_version for each version (its tags): 2 + V
calls for a model of V versions, models read concurrently within a bound."""

from __future__ import annotations

import copy
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from mlflow_gitops.errors import RegistryError
from mlflow_gitops.observed import VersionState
from mlflow_gitops.record import LOCK_MODEL
from mlflow_gitops.registry.mlflow.base import Connection, quote, version_state
from mlflow_gitops.registry.mlflow.env import credentials_env
from mlflow_gitops.registry.mlflow.errors import not_found, unity_catalog_uri
from mlflow_gitops.registry.signature import missing_signature

# models read at once on UC: a thread each, every call waits on the network; UC's API answers
# in tens of milliseconds, so the bound, not the machine, sets a plan's time
THREADS_VARIABLE = "MLFLOW_GITOPS_UC_READ_THREADS"
DEFAULT_THREADS = 16
# one page of a model's versions, and of the models of an unfiltered read
UC_PAGE = 1000


def read_threads() -> int:
    """The bound on models read at once (MLFLOW_GITOPS_UC_READ_THREADS, default 16)."""
    raw = os.environ.get(THREADS_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_THREADS
    if not raw.isdigit() or int(raw) < 1:
        raise RegistryError(
            f"{THREADS_VARIABLE}={raw!r} is not a positive whole number",
            f"set it to how many models to read at once (default {DEFAULT_THREADS}), or unset it",
        )
    return int(raw)


def is_unity_catalog(registry_client: Any) -> bool:
    """Whether MLflow's registry client talks to Unity Catalog (a `databricks-uc` URI, or a store
    of MLflow's UC classes)."""
    if unity_catalog_uri(str(getattr(registry_client, "registry_uri", "") or "")):
        return True
    from mlflow.store._unity_catalog.registry.rest_store import UcModelRegistryStore

    try:
        return isinstance(registry_client.store, UcModelRegistryStore)
    except Exception:
        return False  # a store that cannot open here is not asked what it is


@dataclass(frozen=True)
class UcModel:
    """One model as UC returned it (MLflow's RegisteredModel) and its versions, with how many
    calls reading it took."""

    model: Any  # None: no such model
    versions: tuple[VersionState, ...]
    calls: int


class Unity(Connection):
    """Whether this registry is Unity Catalog, and UC's reads. (A 403 names UC's privilege by
    the registry URI the failed call went to: errors.translate.)"""

    @cached_property
    def unity_catalog(self) -> bool:
        """True when this registry is Databricks Unity Catalog."""
        return is_unity_catalog(self.writer)

    def _read_unity(
        self, names: Sequence[str] | None
    ) -> tuple[dict[str, Any], dict[str, list[VersionState]]]:
        """The models (all of them when None: one unfiltered, paged model search first) and their
        versions, each model read on its own, `read_threads()` at once. The calls counter is
        added up here, in the calling thread."""
        store = _resolving_credentials_once(self.writer.store)
        if names is None:
            found: list[str] = []
            for model in self._pages(store.search_registered_models, None, UC_PAGE):
                if model.name != LOCK_MODEL:
                    found.append(str(model.name))
            names = found
        read = [*names]
        if not read:
            return {}, {}
        threads = min(read_threads(), len(read))
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="uc-read") as pool:
            answers = list(pool.map(lambda n: self._read_uc_model(store, n), read))
        models: dict[str, Any] = {}
        versions: dict[str, list[VersionState]] = {}
        for name, answer in zip(read, answers, strict=True):
            self.calls += answer.calls
            if answer.model is None:
                continue
            models[name] = answer.model
            versions[name] = list(answer.versions)
        return models, versions

    def _read_uc_model(self, store: Any, name: str) -> UcModel:
        """One model: get_registered_model, its versions by `name = '...'`, then each version's
        tags by get_model_version (model None when it does not exist)."""
        from mlflow.exceptions import MlflowException

        calls = 0

        def call(what: str, fn: Callable[[], Any], version: int | None = None) -> Any:
            nonlocal calls
            calls += 1
            with self._errors(what + " at", operation="read", model=name, version=version):
                return fn()

        try:
            model = call("read the registered model", lambda: store.get_registered_model(name))
        except RegistryError as exc:
            if isinstance(exc.__cause__, MlflowException) and not_found(exc.__cause__):
                return UcModel(model=None, versions=(), calls=calls)
            raise
        numbers: list[int] = []
        for page in self._uc_version_pages(store, name, call):
            numbers += [int(v.version) for v in page]
        read: list[VersionState] = []
        for number in sorted(numbers):
            mv = call(
                "read a model version",
                lambda n=number: store.get_model_version(name, str(n)),  # type: ignore[misc]
                number,
            )
            # UC has no stages (MLflow's UC client sets none): every version reads as stage None
            read.append(replace(version_state(mv), stage="None"))
        return UcModel(model=model, versions=tuple(read), calls=calls)

    def _uc_refusal(self, source: str) -> str | None:
        """Why UC would refuse to register `source` (`runs:/<id>/<path>`): the model's MLmodel,
        one small download from the tracking server, read for a signature (registry/signature)."""
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        run_id, _, path = source.removeprefix("runs:/").partition("/")
        path = path.strip("/") or "model"
        with tempfile.TemporaryDirectory(prefix="mlflow-gitops-mlmodel-") as tmp:
            try:
                with self._errors(f"read the MLmodel of {source} from"):
                    location = self._model_location(run_id, path)
                    self.calls += 1
                    with credentials_env(self.credentials):
                        local = download_artifacts(
                            artifact_uri=f"{location}/MLmodel",
                            dst_path=tmp,
                            tracking_uri=self._tracking_uri(),
                        )
            except RegistryError as exc:
                cause = exc.__cause__
                if (isinstance(cause, MlflowException) and not_found(cause)) or _absent(cause):
                    return "the run has no model (MLmodel) at that artifact path"
                raise
            return missing_signature(Path(local).read_text(encoding="utf-8"))

    def _tracking_uri(self) -> str:
        return str(self.client._tracking_client.tracking_uri)

    def _model_location(self, run_id: str, path: str) -> str:
        """Where the run's model `path` is: MLflow 3 logs a model as a logged model of the run
        (its own artifact location), MLflow 2 into the run's artifacts. Resolved here rather than
        by MLflow's runs:/ repository, which looks logged models up in the process-wide tracking
        server instead of this registry's."""
        from mlflow.exceptions import MlflowException

        self.calls += 1
        experiment = self.client.get_run(run_id).info.experiment_id
        try:
            self.calls += 1
            found = self.client.search_logged_models(
                experiment_ids=[experiment], filter_string=f"name = {quote(path)}"
            )
        except MlflowException:
            found = []  # a tracking server without logged models (MLflow 2.x)
        for logged in found:
            if logged.source_run_id == run_id and logged.artifact_location:
                return str(logged.artifact_location).rstrip("/")
        return f"runs:/{run_id}/{path}"

    @staticmethod
    def _uc_version_pages(
        store: Any, name: str, call: Callable[..., Any]
    ) -> Iterator[Sequence[Any]]:
        token = None
        while True:
            page = call(
                "search the model's versions",
                lambda t=token: store.search_model_versions(
                    filter_string=f"name = {quote(name)}", max_results=UC_PAGE, page_token=t
                ),
            )
            yield page
            token = page.token
            if not token:
                return


def _resolving_credentials_once(store: Any) -> Any:
    """A copy of MLflow's UC store that resolves its host credentials once. MLflow resolves them
    before every request by building a Databricks SDK client, which fetches the workspace's
    /.well-known/databricks-config first: a second round trip per call, half of a read's time.
    What it returns names the SDK profile (the SDK client that sends each request is cached by
    MLflow and renews its own tokens) or a fixed token, so one resolution serves the whole read."""
    resolve = getattr(store, "get_host_creds", None)
    if resolve is None:
        return store
    lock = threading.Lock()
    resolved: list[Any] = []

    def once() -> Any:
        with lock:
            if not resolved:
                resolved.append(resolve())
            return resolved[0]

    own = copy.copy(store)
    own.get_host_creds = once
    return own


def _absent(exc: BaseException | None) -> bool:
    """A missing file in an object store (botocore's 404, a local FileNotFoundError)."""
    if isinstance(exc, FileNotFoundError):
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey")
    return False
