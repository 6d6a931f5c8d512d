"""Whether a model can be registered where a signature is required (Unity Catalog refuses a model
whose MLmodel has no signature with both inputs and outputs). Pure: the MLmodel's text in, the
reason out."""

from __future__ import annotations

from typing import Any

import yaml


def missing_signature(mlmodel_text: str) -> str | None:
    """Why this MLmodel would be refused by a registry that requires a signature, or None when
    it has one with inputs and outputs (MLflow's own UC check: signature set, outputs set)."""
    try:
        doc: Any = yaml.safe_load(mlmodel_text)
    except yaml.YAMLError:
        return "its MLmodel file is not valid YAML"
    if not isinstance(doc, dict):
        return "its MLmodel file is not a model description"
    signature = doc.get("signature")
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return "the model was logged without a signature"
    if not signature.get("outputs"):
        return "the model's signature has inputs but no outputs"
    return None
