"""Shared test helpers: write a registry.yaml and load it."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mlflow_gitops.spec.load import load
from mlflow_gitops.spec.located import LoadedSpec


def write_spec(folder: Path, text: str, name: str = "registry.yaml") -> Path:
    """Write a dedented registry file and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def load_text(folder: Path, text: str) -> LoadedSpec:
    """Write and load a registry file."""
    return load(write_spec(folder, text))
