"""Where each registry is and how to reach it: a registry's URI and credentials, resolved once
(`resolve`), and the adapters opened with them. mlflow is imported here, lazily, so that
validate, schema and --help never load it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow_gitops.credentials import Credentials
from mlflow_gitops.errors import GitopsError
from mlflow_gitops.gates.port import Evidence
from mlflow_gitops.observed import RegistryState
from mlflow_gitops.plan.saved import SavedPlan, same_registry, saved_plan_uri
from mlflow_gitops.registry.port import RegistryPort
from mlflow_gitops.secrets import redact
from mlflow_gitops.settings import resolve_tracking_uri
from mlflow_gitops.spec.connection import resolve_connection
from mlflow_gitops.spec.load import file_tracking_uri, read_text
from mlflow_gitops.spec.model import DEFAULT_REGISTRY
from mlflow_gitops.spec.tree import LoadedTree


def open_registry(uri: str, credentials: Credentials | None = None) -> RegistryPort:
    """The MLflow adapter; imported here so that validate, schema and --help never load mlflow.
    `credentials`: this registry's own (a tree's named registry); None: MLflow's variables."""
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry

    return MlflowRegistry(uri, credentials)


def open_evidence(
    uri: str,
    credentials: Credentials | None = None,
    registries: Mapping[str, tuple[str, Credentials | None]] | None = None,
) -> Evidence:
    """Gate evidence through MLflow, connected only when a gate first needs it: this registry's
    models with its own credentials, and those of `registries` (by name: the sources of copies)
    with theirs."""
    return _LazyEvidence(uri, credentials, registries or {})


class _LazyEvidence:
    def __init__(
        self,
        uri: str,
        credentials: Credentials | None,
        registries: Mapping[str, tuple[str, Credentials | None]],
    ) -> None:
        self.uri, self.credentials, self.registries = uri, credentials, registries
        self._real: Evidence | None = None

    @property
    def real(self) -> Evidence:
        if self._real is None:
            from mlflow_gitops.registry.mlflow.evidence import MlflowEvidence

            self._real = MlflowEvidence(self.uri, self.credentials, self.registries)
        return self._real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def resolve(
    tree: LoadedTree, name: str, flag: str | None, *, local_default: bool = True
) -> tuple[str, Credentials | None]:
    """A registry's URI and credentials (spec/connection: the one place that reads them)."""
    return resolve_connection(tree, name, flag, local_default=local_default)


def connect_named(tree: LoadedTree, name: str, flag: str | None) -> tuple[str, RegistryPort]:
    """One registry of a tree: its URI and an adapter that sends only its own credentials."""
    uri, credentials = resolve(tree, name, flag)
    return uri, open_with(uri, credentials)


def open_with(uri: str, credentials: Credentials | None) -> RegistryPort:
    """The adapter for a resolved registry (open_registry is looked up when called, so that a
    test can serve a fake for every URI)."""
    return open_registry(uri) if credentials is None else open_registry(uri, credentials)


def saved_registry(
    saved: SavedPlan, tree: LoadedTree | None, flag: str | None
) -> tuple[str, str, Credentials | None]:
    """The registry a saved plan applies to: its name, URI and credentials. A named registry
    of a tree (registries:) is resolved as planning resolves it, with its own credentials;
    otherwise the URI is saved_plan_uri's, with MLflow's variables. Either way refused when it
    is another registry than the plan's."""
    if tree is None or not tree.registries:
        return DEFAULT_REGISTRY, saved_plan_uri(saved, flag), None
    if not saved.registry or not saved.registry_name:
        raise GitopsError(
            f"this plan does not record which registry of {saved.file} it was made against (an "
            "older mlflow-gitops wrote it), so apply cannot tell whose credentials to use; "
            "nothing was applied",
            "run `mlflow-gitops plan --registry NAME --out` again",
        )
    uri, credentials = resolve(tree, saved.registry_name, flag)
    same_registry(saved.registry, uri)
    return saved.registry_name, uri, credentials


# --- the registry of a lifecycle command (import, history, rollback, propose) --------------------


def connect(flag: str | None, file_uri: str | None, folder: Path) -> tuple[str, RegistryPort]:
    """The registry URI (settings' precedence) and the adapter for it."""
    uri = resolve_tracking_uri(flag, file_uri, folder)
    return uri, open_registry(uri)


def connect_file(
    flag: str | None, file: Path, *, required: bool = True
) -> tuple[str, str, RegistryPort]:
    """A lifecycle command's file and registry: the file's text ("" when it is not `required`
    and absent), the registry URI (--tracking-uri, $MLFLOW_TRACKING_URI, the file's
    tracking_uri, the local default beside it) and the adapter."""
    text = read_text(file) if required else file.read_text("utf-8") if file.exists() else ""
    uri, registry = connect(flag, file_tracking_uri(text), file.resolve().parent)
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
