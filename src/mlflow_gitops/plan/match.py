"""Which live version each file entry names: by version number, by run, by source, or by
provenance for a copy; the entries that register or copy a new version; the versions no entry
names (unmanaged). Part of the planner, pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow_gitops.errors import SpecIssue
from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.plan.changes import (
    Change,
    CopyVersion,
    DeleteVersion,
    DeleteVersionTag,
    RegisterVersion,
    Target,
)
from mlflow_gitops.record import REGISTRATION_TAG
from mlflow_gitops.spec.located import LoadedSpec, Loc, format_loc, locate
from mlflow_gitops.spec.model import DEFAULT_REGISTRY, ModelSpec, VersionSpec, parse_run_ref

FULL_RUN_ID_LENGTH = 32


@dataclass(frozen=True)
class Slot:
    """A file entry matched to a live version, or to a version this plan registers."""

    entry: VersionSpec
    index: int
    observed: VersionState | None

    @property
    def target(self) -> Target:
        if self.observed is not None:
            return Target(version=self.observed.version)
        return Target(entry=self.entry.key)

    @property
    def name(self) -> int | str:
        return self.observed.version if self.observed else self.entry.key


@dataclass
class VersionMatcher:
    """Matches one model's file entries to its live versions; `out` and `issues` collect the
    changes and the problems matching finds."""

    desired: LoadedSpec
    name: str
    model: ModelSpec
    live: ModelState
    exists: bool
    file: str
    registry: str = DEFAULT_REGISTRY  # the registry this model lives in (a tree's name)
    copies: dict[str, int] = field(default_factory=dict)  # copy_from entry -> live version
    out: list[Change] = field(default_factory=list)
    issues: list[SpecIssue] = field(default_factory=list)
    unmanaged: list[int] = field(default_factory=list)
    duplicates: set[int] = field(default_factory=set)  # copies of an interrupted registration

    def match(self) -> list[Slot]:
        """The slots of the entries, in file order."""
        return self._match_versions()

    def _match_versions(self) -> list[Slot]:
        slots = []
        claimed: dict[int, int] = {}  # live version -> the entry that names it
        for i, entry in enumerate(self.model.versions):
            found = self._find(entry, i)
            if found is not None and found.version in claimed:
                self._issue(
                    ("models", self.name, "versions", i),
                    f"{entry.key} is version {found.version}, which versions[{claimed[found.version]}] "
                    "already names",
                    "keep one entry per version",
                )
                continue
            if found is not None:
                claimed[found.version] = i
            if (
                found is None
                and entry.copy_from is not None
                and not entry.deleted
                and not self._issue_at(i)
            ):
                source_ref = entry.copy_from.in_registry(self.registry)
                self.out.append(
                    CopyVersion(
                        model=self.name,
                        entry=entry.key,
                        source_registry=source_ref.registry or self.registry,
                        source_model=source_ref.model,
                        source_version=source_ref.version,
                        registry=self.registry,
                    )
                )
            elif (
                found is None
                and entry.version is None
                and not entry.deleted
                and not self._issue_at(i)
            ):
                source, run_id = source_of(entry)
                self.out.append(
                    RegisterVersion(model=self.name, entry=entry.key, source=source, run_id=run_id)
                )
            if found is not None or (entry.version is None and not entry.deleted):
                slots.append(Slot(entry, i, found))
        matched = {s.observed.version for s in slots if s.observed} | self.duplicates
        self.unmanaged = [v.version for v in self.live.versions if v.version not in matched]
        return slots

    def _find(self, entry: VersionSpec, i: int) -> VersionState | None:
        loc: Loc = ("models", self.name, "versions", i)
        if entry.version is not None:
            found = self.live.version(entry.version)
            if found is None and not entry.deleted:
                what = f"model '{self.name}' has no version {entry.version}"
                if not self.exists:
                    what = f"model '{self.name}' does not exist yet, so it has no version {entry.version}"
                self._issue(
                    loc,
                    what,
                    "name a version that exists, or register one with run: or source:",
                )
            return found
        if entry.copy_from is not None:
            return self._copy(entry)
        if entry.run is not None:
            run_id, path = parse_run_ref(entry.run)
            candidates = [v for v in self.live.versions if matches_run(v, run_id, path)]
            if not candidates and len(run_id) < FULL_RUN_ID_LENGTH:
                self._issue(
                    loc,
                    f"run id prefix '{run_id}' matches no version of '{self.name}'",
                    "to register a new version, give the full 32-character run id",
                )
        else:
            candidates = [v for v in self.live.versions if v.source == entry.source]
        tokens = {v.tags.get(REGISTRATION_TAG) for v in candidates}
        if len(candidates) > 1 and len(tokens) == 1 and None not in tokens:
            # copies made by one registration whose answers were lost (MLflow retried the POST
            # while the server was slow): keep the first, delete the others, which no one uses
            keep, *copies = sorted(candidates, key=lambda v: v.version)
            for copy in copies:
                if (
                    copy.stage in ("None", "Archived")
                    and copy.version not in self.live.aliases.values()
                ):
                    self.out.append(
                        DeleteVersion(
                            model=self.name, target=Target(version=copy.version), stage=copy.stage
                        )
                    )
            self.out.append(
                DeleteVersionTag(
                    model=self.name,
                    target=Target(version=keep.version),
                    key=REGISTRATION_TAG,
                    before=keep.tags[REGISTRATION_TAG],
                )
            )
            self.duplicates |= {c.version for c in copies}
            return keep
        if len(candidates) > 1:
            listed = ", ".join(str(v.version) for v in candidates)
            self._issue(
                loc,
                f"{entry.key} matches several versions of '{self.name}': {listed}",
                "name the version with `version: N` instead",
            )
            return None
        return candidates[0] if candidates else None

    def _copy(self, entry: VersionSpec) -> VersionState | None:
        """The version of this model copied from the entry's source (matched by provenance)."""
        number = self.copies.get(entry.key)
        return self.live.version(number) if number is not None else None

    def _issue(self, loc: Loc, message: str, hint: str) -> None:
        _, pos = locate(loc, self.desired.positions)
        self.issues.append(
            SpecIssue(self.file, pos.line, pos.column, format_loc(loc), message, hint)
        )

    def _issue_at(self, index: int) -> bool:
        prefix = format_loc(("models", self.name, "versions", index))
        return any(i.path == prefix for i in self.issues)


def source_of(entry: VersionSpec) -> tuple[str, str | None]:
    if entry.run is not None:
        run_id, path = parse_run_ref(entry.run)
        return f"runs:/{run_id}/{path}", run_id
    assert entry.source is not None
    return entry.source, None


def matches_run(version: VersionState, run_id: str, path: str) -> bool:
    """A version registered from that run and artifact path, however MLflow recorded its source.

    MLflow 3 resolves `runs:/<id>/<path>` at registration to the run's artifact location or to a
    logged model (`models:/m-...`), so the source alone cannot be compared to the reference.
    """
    if not version.run_id or not version.run_id.startswith(run_id):
        return False
    source = version.source.rstrip("/")
    return (
        source == f"runs:/{version.run_id}/{path}"
        or source.endswith(f"/{path}")
        or source.startswith("models:/m-")
    )
