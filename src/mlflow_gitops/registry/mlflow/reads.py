"""Reading an MLflow registry: the live state of the managed models in as few calls as the
server accepts (`name IN (...)` chunks on MLflow 3, `name = '...'` or one scan on 2.x, one model at
a time, concurrently, on Unity Catalog: unity.py), runs."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any
from urllib.parse import quote_plus

from mlflow_gitops.errors import RegistryError
from mlflow_gitops.observed import ModelState, RegistryState, RunSummary, VersionState
from mlflow_gitops.record import LOCK_MODEL
from mlflow_gitops.registry.mlflow.base import quote
from mlflow_gitops.registry.mlflow.errors import error_code, not_found, refuses_name_in
from mlflow_gitops.registry.mlflow.search import Search, is_rest, model_from_entity, searches
from mlflow_gitops.registry.mlflow.unity import Unity
from mlflow_gitops.secrets import redact

# GET requests carry the filter in the URL, percent-encoded; gunicorn caps the request line at
# 4,094 bytes, and MLflow's filter parser (sqlparse) at 3,332 names per IN list
MAX_FILTER_URL_CHARS = 3500
MAX_FILTER_NAMES = 3000
# above this many IN-chunks, one unfiltered scan (1,000 models / 100,000 versions a page) is cheaper
MAX_FILTER_CHUNKS = 2
MODELS_PAGE = 1000
VERSIONS_PAGE = 100_000
# MLflow 2.x servers refuse `name IN (...)`: up to this many models are read with one `name = '...'`
# search each for models and for versions (2 calls a model); more are read by one unfiltered scan
MAX_NAME_FILTERS = 5
PROMPT_TAG = "mlflow.prompt.is_prompt"

# tracking URIs whose server refused `name IN (...)` (MLflow 2.x) in this process
_NO_NAME_IN: dict[str, bool] = {}


class Reads(Unity):
    """The registry's state and its runs."""

    def read(self, names: Sequence[str] | None = None) -> RegistryState:
        """Registered models through search_registered_models, versions through paged
        search_model_versions; aliases come from the registered models because
        search_model_versions returns none. The filters are the cheapest this server accepts. On
        Unity Catalog: each model on its own, 2 + (its versions) calls, several at once."""
        wanted = None if names is None else set(names)
        if wanted is not None and not wanted:
            return RegistryState(models={})
        with self._errors("read the registry at"):
            if self.unity_catalog:
                found, versions = self._read_unity(None if wanted is None else sorted(wanted))
                models = {name: model_from_entity(m) for name, m in found.items()}
            else:
                models, versions = self._read_either(wanted)
        return self._state(models, versions, wanted)

    def _read_either(
        self, wanted: set[str] | None
    ) -> tuple[dict[str, ModelState], dict[str, list[VersionState]]]:
        """_read with `name IN (...)`, or again without it on a server that refuses it."""
        try:
            return self._read(wanted, _NO_NAME_IN.get(self.uri, False))
        except Exception as exc:
            if not refuses_name_in(exc):
                raise
            # an MLflow 2.x server: remembered for this process, read again without IN
            _NO_NAME_IN[self.uri] = True
            return self._read(wanted, True)

    def _state(
        self,
        models: dict[str, ModelState],
        versions: dict[str, list[VersionState]],
        wanted: set[str] | None,
    ) -> RegistryState:
        """The read models as values; prompts are refused among the managed models, left out of
        a whole-registry read."""
        prompts = sorted(n for n, m in models.items() if m.tags.get(PROMPT_TAG) == "true")
        if prompts and wanted is not None:
            raise RegistryError(
                f"{', '.join(prompts)} is an MLflow prompt, not a registered model",
                "mlflow-gitops manages registered models; remove it from registry.yaml",
            )
        return RegistryState(
            models={
                name: replace(m, versions=tuple(sorted(versions[name], key=lambda v: v.version)))
                for name, m in sorted(models.items())
                if name not in prompts
            }
        )

    def _read(
        self, wanted: set[str] | None, no_name_in: bool
    ) -> tuple[dict[str, ModelState], dict[str, list[VersionState]]]:
        """The registered models and their versions, with the filters `filters` picks.

        With MLflow 2.x's `name = '...'` filters (a few models), a model's versions are asked for
        only when it exists. Otherwise both searches take the same filters, and a REST server's
        versions search is sent while the models are read: the server answers both at once, and
        the models' answer is decoded while the versions' is still being written."""
        # the store, not MlflowClient: MLflow 3's client adds `tag.mlflow.prompt.is_prompt !=
        # 'true'` to every model search, which servers before 2.21 (no prompts) answer with no
        # model at all; prompts are told apart by their tag (_state)
        store = self.writer.store
        chunks = filters(wanted, no_name_in)
        search_models, search_versions = searches(store, MODELS_PAGE, VERSIONS_PAGE)
        sent: list[None] = []  # one item per request, appended from either thread

        def tick() -> None:
            sent.append(None)

        def all_of(search: Search, flts: list[str | None]) -> list[Any]:
            return [row for flt in flts for row in search(flt, tick)]

        def found_models() -> dict[str, ModelState]:
            return {
                m.name: m
                for m in all_of(search_models, chunks)
                if (wanted is None and m.name != LOCK_MODEL) or (wanted and m.name in wanted)
            }

        try:
            if any(flt is not None and flt.startswith("name = ") for flt in chunks):
                models = found_models()
                quoted = {quote(name) for name in models}
                rows = all_of(search_versions, [f for f in chunks if f and f[7:] in quoted])
            elif is_rest(store):
                # an error of the models search is the one reported, once the versions' is done
                with ThreadPoolExecutor(1, thread_name_prefix="read-versions") as pool:
                    later = pool.submit(all_of, search_versions, chunks)
                    models = found_models()
                    rows = later.result()
            else:
                models = found_models()
                rows = all_of(search_versions, chunks) if models else []
        finally:
            self.calls += len(sent)
        versions: dict[str, list[VersionState]] = {name: [] for name in models}
        for name, version in rows:
            if name in versions:
                versions[name].append(version)
        return models, versions

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
                if isinstance(exc.__cause__, MlflowException) and not_found(exc.__cause__):
                    missing.add(run_id)
                else:
                    raise
        return missing

    def refused_registrations(self, sources: Sequence[str]) -> dict[str, str]:
        """Unity Catalog refuses a model without a signature: each runs:/ source's MLmodel is
        read (one download per registration). Other registries register any model: no call."""
        if not self.unity_catalog:
            return {}
        refused = {}
        for source in sources:
            reason = self._uc_refusal(source)
            if reason is not None:
                refused[source] = reason
        return refused

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
            if error_code(exc) != "INVALID_PARAMETER_VALUE":
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


def filters(wanted: set[str] | None, no_name_in: bool) -> list[str | None]:
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
        return [f"name = {quote(name)}" for name in names]
    chunks: list[str | None] = list(in_chunks(names))
    return chunks if len(chunks) <= MAX_FILTER_CHUNKS else [None]


def in_chunks(names: list[str]) -> list[str]:
    """`name IN (...)` filters, each short enough for a URL once percent-encoded (gunicorn caps
    the request line at 4,094 bytes) and under MLflow's filter parser's 3,332 names."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    separator = len(quote_plus(", "))
    for name in names:
        quoted = quote(name)
        cost = len(quote_plus(quoted)) + separator
        if current and (size + cost > MAX_FILTER_URL_CHARS or len(current) >= MAX_FILTER_NAMES):
            chunks.append(f"name IN ({', '.join(current)})")
            current, size = [], 0
        current.append(quoted)
        size += cost
    if current:
        chunks.append(f"name IN ({', '.join(current)})")
    return chunks
