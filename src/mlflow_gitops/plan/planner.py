"""plan(desired, observed) -> Plan: a pure function of two values."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from mlflow_gitops.errors import SpecError, SpecIssue
from mlflow_gitops.observed import ModelState, RegistryState, VersionState
from mlflow_gitops.plan.changes import (
    Change,
    CreateModel,
    DeleteAlias,
    DeleteModelTag,
    DeleteVersionTag,
    Plan,
    RegisterVersion,
    SetAlias,
    SetModelDescription,
    SetModelTag,
    SetVersionDescription,
    SetVersionTag,
    Target,
    TransitionStage,
    sort_key,
)
from mlflow_gitops.spec.check import alias_key
from mlflow_gitops.spec.load import LoadedSpec, Loc, format_loc, locate
from mlflow_gitops.spec.model import (
    GUARDED_STAGES,
    ModelSpec,
    Settings,
    VersionSpec,
    parse_run_ref,
    settings_for,
)

FULL_RUN_ID_LENGTH = 32
ALIASES_TAG = "mlflow_gitops.aliases"  # the aliases as the tool last applied them (drift check)
CHANGE_TAG = "mlflow_gitops.change"


@dataclass(frozen=True)
class _Slot:
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


def plan(desired: LoadedSpec, observed: RegistryState) -> Plan:
    """Every change that makes the registry match the file, sorted, with policy findings."""
    changes: list[Change] = []
    blocked: dict[str, tuple[str, ...]] = {}
    unmanaged: dict[str, tuple[int, ...]] = {}
    issues: list[SpecIssue] = []
    spec = desired.spec
    for name, model in spec.models.items():
        live = observed.models.get(name)
        planner = _ModelPlanner(desired, name, model, live, settings_for(spec, model))
        changes.extend(planner.run())
        issues.extend(planner.issues)
        if planner.blocked:
            blocked[name] = tuple(planner.blocked)
        if planner.unmanaged:
            unmanaged[name] = tuple(planner.unmanaged)
    if issues:
        raise SpecError(issues)
    return Plan(
        changes=tuple(_order_transitions(sorted(changes, key=sort_key), observed)),
        blocked=blocked,
        unmanaged=unmanaged,
        observed={name: observed.digest(name) for name in spec.models},
    )


class _ModelPlanner:
    def __init__(
        self,
        desired: LoadedSpec,
        name: str,
        model: ModelSpec,
        live: ModelState | None,
        settings: Settings,
    ) -> None:
        self.desired = desired
        self.name = name
        self.model = model
        self.live = live or ModelState(name=name)
        self.exists = live is not None
        self.settings = settings
        self.issues: list[SpecIssue] = []
        self.blocked: list[str] = []
        self.unmanaged: list[int] = []
        self.out: list[Change] = []

    def run(self) -> list[Change]:
        if not self.exists:
            self.out.append(CreateModel(model=self.name))
        slots = self._match_versions()
        self._model_fields()
        for slot in slots:
            self._version_fields(slot)
        self._stages(slots)
        self._aliases(slots)
        return self.out

    # --- matching file entries to live versions -----------------------------------------------

    def _match_versions(self) -> list[_Slot]:
        slots = []
        for i, entry in enumerate(self.model.versions):
            found = self._find(entry, i)
            if found is None and entry.version is None and not self._issue_at(i):
                source, run_id = _source_of(entry)
                self.out.append(
                    RegisterVersion(model=self.name, entry=entry.key, source=source, run_id=run_id)
                )
            if found is not None or entry.version is None:
                slots.append(_Slot(entry, i, found))
        matched = {s.observed.version for s in slots if s.observed}
        self.unmanaged = [v.version for v in self.live.versions if v.version not in matched]
        return slots

    def _find(self, entry: VersionSpec, i: int) -> VersionState | None:
        loc: Loc = ("models", self.name, "versions", i)
        if entry.version is not None:
            found = self.live.version(entry.version)
            if found is None:
                what = f"model '{self.name}' has no version {entry.version}"
                if not self.exists:
                    what = f"model '{self.name}' does not exist yet, so it has no version {entry.version}"
                self._issue(
                    loc,
                    what,
                    "name a version that exists, or register one with run: or source:",
                )
            return found
        if entry.run is not None:
            run_id, path = parse_run_ref(entry.run)
            candidates = [v for v in self.live.versions if _matches_run(v, run_id, path)]
            if not candidates and len(run_id) < FULL_RUN_ID_LENGTH:
                self._issue(
                    loc,
                    f"run id prefix '{run_id}' matches no version of '{self.name}'",
                    "to register a new version, give the full 32-character run id",
                )
        else:
            candidates = [v for v in self.live.versions if v.source == entry.source]
        if len(candidates) > 1:
            listed = ", ".join(str(v.version) for v in candidates)
            self._issue(
                loc,
                f"{entry.key} matches several versions of '{self.name}': {listed}",
                "name the version with `version: N` instead",
            )
            return None
        return candidates[0] if candidates else None

    def _issue(self, loc: Loc, message: str, hint: str) -> None:
        _, pos = locate(loc, self.desired.positions)
        self.issues.append(
            SpecIssue(str(self.desired.path), pos.line, pos.column, format_loc(loc), message, hint)
        )

    def _issue_at(self, index: int) -> bool:
        prefix = format_loc(("models", self.name, "versions", index))
        return any(i.path == prefix for i in self.issues)

    # --- descriptions and tags ------------------------------------------------------------------

    def _model_fields(self) -> None:
        live, model, name = self.live, self.model, self.name
        if model.description is not None:
            want = model.description.rstrip()
            have = live.description if self.exists else None
            if (have or "").rstrip() != want:
                self.out.append(SetModelDescription(model=name, before=have, after=want))
        for key, value in (model.tags or {}).items():
            before = live.user_tags.get(key)
            if value is None and before is not None:
                self.out.append(DeleteModelTag(model=name, key=key, before=before))
            elif value is not None and before != value:
                self.out.append(SetModelTag(model=name, key=key, before=before, after=value))

    def _version_fields(self, slot: _Slot) -> None:
        entry, live, name, target = slot.entry, slot.observed, self.name, slot.target
        if entry.description is not None:
            want = entry.description.rstrip()
            have = live.user_description if live else ""
            if have != want:
                before = have if live else None
                self.out.append(
                    SetVersionDescription(model=name, target=target, before=before, after=want)
                )
        tags = live.user_tags if live else {}
        for key, value in (entry.tags or {}).items():
            before = tags.get(key)
            if value is None and before is not None:
                self.out.append(DeleteVersionTag(model=name, target=target, key=key, before=before))
            elif value is not None and before != value:
                self.out.append(
                    SetVersionTag(model=name, target=target, key=key, before=before, after=value)
                )

    # --- stages -----------------------------------------------------------------------------------

    def _stages(self, slots: list[_Slot]) -> None:
        final: dict[int | str, str] = {v.version: v.stage for v in self.live.versions}
        targets: dict[int | str, Target] = {
            v.version: Target(version=v.version) for v in self.live.versions
        }
        for slot in slots:
            current = slot.observed.stage if slot.observed else "None"
            final[slot.name] = slot.entry.stage or current
            targets[slot.name] = slot.target
            if slot.entry.stage is not None and slot.entry.stage != current:
                self.out.append(
                    TransitionStage(
                        model=self.name,
                        target=slot.target,
                        before=current,
                        after=slot.entry.stage,
                        drift=_stage_drifted(slot.observed),
                    )
                )
        declared = {slot.name: slot.entry.stage for slot in slots}
        if self.settings.archive_previous:
            for stage in GUARDED_STAGES:
                holders = [k for k, s in declared.items() if s == stage]
                if not holders:
                    continue
                for key, current in list(final.items()):
                    if current == stage and declared.get(key) != stage:
                        final[key] = "Archived"
                        self.out.append(
                            TransitionStage(
                                model=self.name,
                                target=targets[key],
                                before=current,
                                after="Archived",
                                reason="archive_previous",
                                replaced_by=tuple(holders),
                            )
                        )
        if self.settings.unmanaged_versions == "archive":
            for number in self.unmanaged:
                if final[number] != "Archived":
                    self.out.append(
                        TransitionStage(
                            model=self.name,
                            target=targets[number],
                            before=final[number],
                            after="Archived",
                            reason="unmanaged",
                        )
                    )
                    final[number] = "Archived"
        counts = Counter(final.values())
        for stage, limit in self.settings.max_per_stage.items():
            if counts[stage] > limit:
                names = sorted(str(k) for k, s in final.items() if s == stage)
                self.blocked.append(
                    f"policy max_per_stage: {counts[stage]} versions would be in {stage} "
                    f"({', '.join(names)}), at most {limit} allowed; declare their stages "
                    "or set archive_previous: true"
                )

    # --- aliases ---------------------------------------------------------------------------------

    def _aliases(self, slots: list[_Slot]) -> None:
        applied = _parse_alias_tag(self.live.tags.get(ALIASES_TAG))
        by_key = {slot.entry.key: slot for slot in slots}
        for alias, value in (self.model.aliases or {}).items():
            before = self.live.aliases.get(alias)
            if value is None:
                if before is not None:
                    self.out.append(DeleteAlias(model=self.name, alias=alias, before=before))
                continue
            if isinstance(value, int):
                if self.live.version(value) is None:
                    self._issue(
                        ("models", self.name, "aliases", alias),
                        f"alias '{alias}' points to version {value}, which does not exist",
                        "point it at an existing version, or at a run: entry this file registers",
                    )
                    continue
                target = Target(version=value)
            else:
                key = alias_key(value)
                slot = by_key.get(key or "")
                if slot is None:
                    continue  # reported by the checks (undeclared) or by matching (ambiguous)
                target = slot.target
            if target.version is None or target.version != before:
                drift = applied is not None and applied.get(alias) != before
                self.out.append(
                    SetAlias(
                        model=self.name, alias=alias, before=before, target=target, drift=drift
                    )
                )


def _order_transitions(changes: list[Change], observed: RegistryState) -> list[Change]:
    """Reorder each model's stage transitions so that no Staging or Production that has a holder
    is left empty in between: a version leaves a stage only once another holds it, when possible
    (a swap of two stages cannot avoid it; then the entry into Production goes first)."""
    out: list[Change] = []
    i = 0
    while i < len(changes):
        if not isinstance(changes[i], TransitionStage):
            out.append(changes[i])
            i += 1
            continue
        j = i
        while j < len(changes) and isinstance(changes[j], TransitionStage):
            j += 1
        block = [c for c in changes[i:j] if isinstance(c, TransitionStage)]
        live = observed.models.get(block[0].model)
        stages = {str(v.version): v.stage for v in live.versions} if live else {}
        while block:
            pick = next((t for t in block if not _empties(t, stages)), block[0])
            block.remove(pick)
            stages[_key(pick.target)] = pick.after
            out.append(pick)
        i = j
    return out


def _key(target: Target) -> str:
    return str(target.version) if target.version is not None else str(target.entry)


def _empties(t: TransitionStage, stages: dict[str, str]) -> bool:
    if t.before not in GUARDED_STAGES:
        return False
    return not any(s == t.before for k, s in stages.items() if k != _key(t.target))


def _source_of(entry: VersionSpec) -> tuple[str, str | None]:
    if entry.run is not None:
        run_id, path = parse_run_ref(entry.run)
        return f"runs:/{run_id}/{path}", run_id
    assert entry.source is not None
    return entry.source, None


def _matches_run(version: VersionState, run_id: str, path: str) -> bool:
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


def _stage_drifted(version: VersionState | None) -> bool:
    """The tool last moved this version to a stage it no longer holds: someone moved it by hand."""
    if version is None:
        return False
    last = _LAST_MOVE.match(version.tags.get(CHANGE_TAG, ""))
    return last is not None and last["to"] != version.stage


_LAST_MOVE = re.compile(r"^(?P<from>\w+) -> (?P<to>\w+)\b")


def _parse_alias_tag(value: str | None) -> dict[str, int] | None:
    if not value:
        return None
    out: dict[str, int] = {}
    for pair in value.split(","):
        alias, _, number = pair.partition("=")
        if number.isdigit():
            out[alias.strip()] = int(number)
    return out
