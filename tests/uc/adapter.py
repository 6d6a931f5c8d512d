"""The MLflow adapter opened on a fake Unity Catalog workspace, for the tests and bench/uc_plan.py."""

from __future__ import annotations

from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry


def open_uc_adapter(tracking: str, registry: str) -> MlflowRegistry:
    """The adapter for runs at `tracking` (databricks://<profile>) and models at `registry`
    (databricks-uc://<profile>, MLflow's default registry for that tracking URI)."""
    adapter = MlflowRegistry(tracking)
    if not adapter.unity_catalog:
        # a connection that opens one URI for runs and models (before registries may set a
        # registry_uri of their own): point its clients at the registry URI the way it will
        from mlflow import MlflowClient

        adapter.client = MlflowClient(tracking_uri=tracking, registry_uri=registry)
        adapter.writer = adapter.client._get_registry_client()
        adapter.uri = registry
        adapter.__dict__.pop("unity_catalog", None)
    assert adapter.unity_catalog, f"{registry} is not seen as Unity Catalog"
    return adapter
