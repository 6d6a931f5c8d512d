"""The JSON Schema of registry.yaml, generated from the pydantic models."""

from __future__ import annotations

import json
from typing import Any

from mlflow_gitops.spec.model import RegistrySpec

SCHEMA_ID = "https://github.com/mlflow-gitops/mlflow-gitops/registry.schema.json"


def schema() -> dict[str, Any]:
    """The schema as a dict, with a title and $schema for editors."""
    data = RegistrySpec.model_json_schema(mode="validation")
    return {
        **data,
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "mlflow-gitops registry.yaml (version 1)",
    }


def schema_text() -> str:
    """The schema as stable, indented JSON text."""
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"
