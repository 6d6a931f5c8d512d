"""Where one registry of a tree is and whose credentials its requests send: the one place that
reads them from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from mlflow_gitops.credentials import Credentials
from mlflow_gitops.secrets import register_secrets
from mlflow_gitops.settings import resolve_tracking_uri
from mlflow_gitops.spec.tree import LoadedTree, resolve_registry


def resolve_connection(
    tree: LoadedTree,
    name: str,
    flag: str | None,
    *,
    local_default: bool = True,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, Credentials | None]:
    """A registry's URI and credentials. A file without registries: resolves as it always did
    (--tracking-uri, $MLFLOW_TRACKING_URI, tracking_uri:, the local default) with MLflow's own
    variables (None). A named registry's password and token are masked in all output from now
    on."""
    if not tree.registries:
        root = tree.root
        uri = resolve_tracking_uri(
            flag, root.spec.tracking_uri, root.folder, local_default=local_default
        )
        return uri, None
    resolved = resolve_registry(tree, name, os.environ if environ is None else environ, flag=flag)
    register_secrets(resolved.secrets)
    return resolved.uri, resolved.credentials
