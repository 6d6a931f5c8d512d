"""The committed JSON Schema stays in sync with the pydantic models, and describes real files."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow_gitops.spec.load import load
from mlflow_gitops.spec.schema import schema, schema_text

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "registry.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "run `mlflow-gitops schema > registry.schema.json`"


def test_schema_forbids_unknown_keys_and_lists_stages() -> None:
    text = json.dumps(schema())
    assert '"additionalProperties": false' in text
    assert "Production" in text


def test_repository_registry_file_is_valid() -> None:
    loaded = load(ROOT / "registry.yaml")
    assert "nyc-taxi-regressor" in loaded.spec.models
