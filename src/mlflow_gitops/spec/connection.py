"""Where one registry of a tree is and whose credentials its requests send: the one place that
reads them from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from mlflow_gitops.errors import SpecError
from mlflow_gitops.secrets import register_secrets
from mlflow_gitops.settings import Endpoint, resolve_registry_uri, resolve_tracking_uri
from mlflow_gitops.spec.tree import LoadedTree, resolve_registry
from mlflow_gitops.spec.unity_catalog import unity_catalog_issues


def resolve_connection(
    tree: LoadedTree,
    name: str,
    flag: str | None,
    *,
    local_default: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Endpoint:
    """A registry's tracking and registry URIs, credentials and audit experiment. A file without
    registries: resolves as it always did (--tracking-uri, $MLFLOW_TRACKING_URI, tracking_uri:,
    the local default; then $MLFLOW_REGISTRY_URI, registry_uri:, MLflow's default for the
    tracking URI) with MLflow's own variables (credentials None). A named registry's password
    and token are masked in all output from now on. A registry found to be in Unity Catalog
    only now (its URI in a variable) is held to Unity Catalog's rules here: a located SpecError."""
    if not tree.registries:
        root = tree.root
        uri = resolve_tracking_uri(
            flag, root.spec.tracking_uri, root.folder, local_default=local_default
        )
        registry_uri = resolve_registry_uri(root.spec.registry_uri, uri, root.folder, flag=flag)
        where = Endpoint(uri, registry_uri, None, root.spec.audit_experiment)
    else:
        resolved = resolve_registry(
            tree, name, os.environ if environ is None else environ, flag=flag
        )
        register_secrets(resolved.secrets)
        where = resolved.endpoint
    if where.unity_catalog:
        issues = unity_catalog_issues(tree.files_in(name), tree.root, name)
        if issues:
            raise SpecError(issues)
    return where
