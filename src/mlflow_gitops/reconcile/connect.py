"""Where each registry is and how to reach it: a registry's URI and credentials, resolved once
(`resolve`), and the adapters opened with them. mlflow is imported here, lazily, so that
validate, schema and --help never load it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.gates.port import Evidence
from mlflow_gitops.observed import RegistryState
from mlflow_gitops.plan.saved import SavedPlan, same_registry, saved_plan_endpoint
from mlflow_gitops.registry.port import RegistryPort
from mlflow_gitops.secrets import redact
from mlflow_gitops.settings import Endpoint, resolve_registry_uri, resolve_tracking_uri
from mlflow_gitops.spec.connection import resolve_connection
from mlflow_gitops.spec.load import file_setting, file_tracking_uri, read_text
from mlflow_gitops.spec.model import DEFAULT_REGISTRY
from mlflow_gitops.spec.tree import LoadedTree


def open_registry(where: str | Endpoint) -> RegistryPort:
    """The MLflow adapter; imported here so that validate, schema and --help never load mlflow.
    `where`: a resolved registry (its URIs, its own credentials, its audit experiment), or a
    tracking URI with MLflow's default registry URI and MLflow's variables."""
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry

    return MlflowRegistry(where)


def open_evidence(where: Endpoint, registries: Mapping[str, Endpoint] | None = None) -> Evidence:
    """Gate evidence through MLflow, connected only when a gate first needs it: this registry's
    models with its own credentials, and those of `registries` (by name: the sources of copies)
    with theirs."""
    return _LazyEvidence(where, registries or {})


class _LazyEvidence:
    def __init__(self, where: Endpoint, registries: Mapping[str, Endpoint]) -> None:
        self.where, self.registries = where, registries
        self._real: Evidence | None = None

    @property
    def real(self) -> Evidence:
        if self._real is None:
            from mlflow_gitops.registry.mlflow.evidence import MlflowEvidence

            self._real = MlflowEvidence(self.where, registries=self.registries)
        return self._real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def resolve(
    tree: LoadedTree, name: str, flag: str | None, *, local_default: bool = True
) -> Endpoint:
    """A registry's URIs, credentials and audit experiment (spec/connection: the one place that
    reads them)."""
    return resolve_connection(tree, name, flag, local_default=local_default)


def connect_named(tree: LoadedTree, name: str, flag: str | None) -> tuple[Endpoint, RegistryPort]:
    """One registry of a tree: where it is and an adapter that sends only its own credentials."""
    where = resolve(tree, name, flag)
    return where, open_with(where)


def open_with(where: Endpoint) -> RegistryPort:
    """The adapter for a resolved registry (open_registry is looked up when called, so that a
    test can serve a fake for every registry)."""
    return open_registry(where)


def saved_registry(
    saved: SavedPlan, tree: LoadedTree | None, flag: str | None
) -> tuple[str, Endpoint]:
    """The registry a saved plan applies to: its name and where it is. A named registry of a
    tree (registries:) is resolved as planning resolves it, with its own credentials; otherwise
    the URIs are saved_plan_endpoint's, with MLflow's variables (and the file's audit
    experiment). Either way refused when it is another registry than the plan's."""
    if tree is None or not tree.registries:
        where = saved_plan_endpoint(saved, flag)
        if tree is not None and tree.root.spec.audit_experiment:
            where = replace(where, audit_experiment=tree.root.spec.audit_experiment)
        return DEFAULT_REGISTRY, where
    if not saved.registry or not saved.registry_name:
        raise GitopsError(
            f"this plan does not record which registry of {saved.file} it was made against (an "
            "older mlflow-gitops wrote it), so apply cannot tell whose credentials to use; "
            "nothing was applied",
            "run `mlflow-gitops plan --registry NAME --out` again",
        )
    where = resolve(tree, saved.registry_name, flag)
    same_registry(saved.registry, where.registry_uri)
    return saved.registry_name, where


# --- the registry of a lifecycle command (import, history, rollback, propose) --------------------


def connect(
    flag: str | None, file_uri: str | None, folder: Path, text: str = ""
) -> tuple[str, RegistryPort]:
    """The registry URI (where the models live) and the adapter: the tracking URI by settings'
    precedence, the registry URI by MLflow's ($MLFLOW_REGISTRY_URI, the file's registry_uri,
    the default for the tracking URI), the audit experiment from the file's `text`."""
    uri = resolve_tracking_uri(flag, file_uri, folder)
    registry_uri = resolve_registry_uri(file_setting(text, "registry_uri"), uri, folder, flag=flag)
    where = Endpoint(uri, registry_uri, None, file_setting(text, "audit_experiment"))
    return where.registry_uri, open_registry(where)


def connect_file(
    flag: str | None, file: Path, *, required: bool = True
) -> tuple[str, str, RegistryPort]:
    """A lifecycle command's file and registry: the file's text ("" when it is not `required`
    and absent), the registry URI (connect) and the adapter."""
    text = read_text(file) if required else file.read_text("utf-8") if file.exists() else ""
    uri, registry = connect(flag, file_tracking_uri(text), file.resolve().parent, text)
    return text, uri, registry


def read_models(registry: RegistryPort, uri: str, names: Sequence[str] | None) -> RegistryState:
    """These models (None: all), read once; an error naming every one the registry lacks."""
    state = registry.read(names)
    missing = sorted(set(names or ()) - set(state.models))
    if missing:
        raise GitopsError(
            f"no registered model named {', '.join(map(repr, missing))} at {redact(uri)}",
            "check the names (they are case-sensitive)",
        )
    return state
