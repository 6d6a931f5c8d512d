"""Promotion across registries, the part every backend shares: a version copied from another
registry is found by its provenance tags (record/) in the state the planner already read, and a
version about to be copied is described by its registry as a SourceVersion. Pure; the copy itself
is the backend's (MLflow: registry/mlflow/copy.py).

A copy is matched by its source's registry identity, model and version (the provenance every
release of the tool wrote), or, when the registry identity differs (the same dev server reached
as 127.0.0.1 and as localhost, or through another port mapping), by the source model, version and
the source version's run id, which the source registry is asked for: a run id is the same
whatever host name reaches the server."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.record import COPIES_EXPERIMENT, SourceRef, provenance_run, read_provenance


def source_of(version: VersionState) -> SourceRef | None:
    """The version a copy was made from, read from its provenance tags; None for no copy."""
    return read_provenance(version.tags)


def find_copies(
    model: ModelState | None,
    sources: Iterable[SourceRef],
    runs: Mapping[SourceRef, str] | None = None,
) -> dict[SourceRef, int]:
    """Which versions of this (observed) model were copied from those sources: source -> version
    number, the oldest copy when there are several. A version whose provenance names the source
    registry (by identity), model and version matches; failing that, one whose provenance names
    the same model and version and the run id `runs` gives for the source (the source version's
    run, as its registry tells it), whatever registry identity it recorded. Pure: the read
    already carries version tags."""
    wanted = set(sources)
    runs = runs or {}
    found: dict[SourceRef, int] = {}
    by_run: dict[SourceRef, int] = {}
    for version in sorted(model.versions if model else (), key=lambda v: v.version):
        ref = source_of(version)
        if ref is None:
            continue
        if ref in wanted:
            found.setdefault(ref, version.version)
            continue
        run = provenance_run(version.tags)
        for want in wanted:
            if run and runs.get(want) == run and (ref.model, ref.version) == _mv(want):
                by_run.setdefault(want, version.version)
    return by_run | found


def copied_elsewhere(model: ModelState | None, ref: SourceRef) -> bool:
    """Whether a version of this model records a copy of ref's model and version from another
    registry identity, with a run id: only then is the source asked for its run (find_copies)."""
    for version in model.versions if model else ():
        seen = source_of(version)
        if seen is None or seen == ref or (seen.model, seen.version) != _mv(ref):
            continue
        if provenance_run(version.tags):
            return True
    return False


def _mv(ref: SourceRef) -> tuple[str, int]:
    return ref.model, ref.version


@dataclass(frozen=True)
class SourceVersion:
    """A version about to be copied, as its registry describes it."""

    ref: SourceRef
    run_id: str | None = None
    source: str = ""  # the version's source URI (models:/m-... for an MLflow 3 logged model)
    artifact_uri: str = ""  # where its model files are (the registry's download URI)
    problem: str = ""  # why it cannot be copied (absent, files unreadable); "" when it can
    # why a registry that requires a signature (Unity Catalog) would refuse its model
    # (registry/signature.missing_signature); "" when it has one, or its MLmodel was not read
    unsigned: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    def where(self) -> str:
        """The model as a message names it: its source, and its run when it has one."""
        run = f" (run {self.run_id})" if self.run_id else ""
        return f"{self.source or self.artifact_uri}{run}"


@dataclass(frozen=True)
class Copied:
    """What copy_version made: the copy's version number, and what it did besides (reused or
    removed the run an interrupted apply left), as a sentence for the apply's output."""

    version: int
    detail: str = ""


@dataclass(frozen=True)
class CopyRun:
    """A run of the destination's copies experiment that holds a copy of a source's files."""

    run_id: str
    finished: bool  # FINISHED: every file was uploaded (the run is ended last)
    model_path: str | None  # where the model is inside the run; None: written before it was told
    artifact_uri: str = ""
    experiment: str = COPIES_EXPERIMENT  # the experiment's name (a workspace path on Databricks)


@dataclass(frozen=True)
class Leftovers:
    """The runs an interrupted apply left for one source: the one to register from, the ones to
    delete (unfinished: a kill during the upload), and the ones left alone (finished runs of
    an older release, which cannot tell where their model is)."""

    reuse: CopyRun | None
    remove: tuple[CopyRun, ...]

    def sentence(self, *, done: bool) -> str:
        """What the copy does (`done`: did) with them, for the plan's note and the apply's
        output; "" when there are none."""
        parts = []
        if self.reuse is not None:
            verb = "registered from" if done else "registers from"
            parts.append(
                f"{verb} the run {self.reuse.run_id} that an interrupted apply left in the "
                f"experiment {self.reuse.experiment} (its files are not copied again)"
            )
        if self.remove:
            ids = ", ".join(r.run_id for r in self.remove)
            runs = "runs" if len(self.remove) > 1 else "run"
            verb = "deleted" if done else "deletes"
            parts.append(
                f"{verb} the unfinished {runs} {ids} that an interrupted apply left in the "
                f"experiment {self.remove[0].experiment}"
            )
        return "; ".join(parts)


def leftovers(runs: Sequence[CopyRun], used: Iterable[str] = ()) -> Leftovers:
    """Which leftover runs of one source a copy registers from and which it deletes: the first
    finished run that says where its model is (and no version uses) is reused; unfinished runs
    (no version can use one: the version is registered after the run ends) are deleted; other
    finished runs are left alone (one may hold a version of another model). Pure."""
    taken = set(used)
    reuse = next(
        (r for r in runs if r.finished and r.model_path and r.run_id not in taken),
        None,
    )
    remove = tuple(r for r in runs if not r.finished and r.run_id not in taken)
    return Leftovers(reuse, remove)
