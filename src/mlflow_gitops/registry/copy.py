"""Promotion across registries, the part every backend shares: a version copied from another
registry is found by its provenance tags (record/) in the state the planner already read, and a
version about to be copied is described by its registry as a SourceVersion. Pure; the copy itself
is the backend's (MLflow: registry/mlflow/copy.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.record import SourceRef, read_provenance


def source_of(version: VersionState) -> SourceRef | None:
    """The version a copy was made from, read from its provenance tags; None for no copy."""
    return read_provenance(version.tags)


def find_copies(model: ModelState | None, sources: Iterable[SourceRef]) -> dict[SourceRef, int]:
    """Which versions of this (observed) model were copied from those sources: source -> version
    number, the oldest copy when there are several. Pure: the read already carries version tags."""
    wanted = set(sources)
    found: dict[SourceRef, int] = {}
    for version in sorted(model.versions if model else (), key=lambda v: v.version):
        ref = source_of(version)
        if ref in wanted and ref not in found:
            found[ref] = version.version
    return found


@dataclass(frozen=True)
class SourceVersion:
    """A version about to be copied, as its registry describes it."""

    ref: SourceRef
    run_id: str | None = None
    source: str = ""  # the version's source URI (models:/m-... for an MLflow 3 logged model)
    artifact_uri: str = ""  # where its model files are (the registry's download URI)
    problem: str = ""  # why it cannot be copied (absent, files unreadable); "" when it can

    @property
    def ok(self) -> bool:
        return not self.problem
