"""plan(desired, observed) -> Plan: a pure function of two values."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from mlflow_gitops.errors import SpecError, SpecIssue
from mlflow_gitops.observed import ModelState, RegistryState, VersionState
from mlflow_gitops.plan.changes import (
    Change,
    CreateModel,
    DeleteAlias,
    DeleteModelTag,
    DeleteVersion,
    DeleteVersionTag,
    Plan,
    RestoreHistory,
    SetAlias,
    SetModelDescription,
    SetModelTag,
    SetVersionDescription,
    SetVersionTag,
    Target,
    TransitionStage,
    sort_key,
)
from mlflow_gitops.plan.match import Slot, VersionMatcher
from mlflow_gitops.plan.webhooks import plan_webhooks
from mlflow_gitops.record import (
    history_altered,
    last_move,
    read_record,
    recorded_aliases,
    split_history,
    text_altered,
)
from mlflow_gitops.record.run import AuditRun, rebuild_block
from mlflow_gitops.spec.check import alias_key
from mlflow_gitops.spec.located import LoadedSpec, Loc, format_loc, locate
from mlflow_gitops.spec.model import (
    DEFAULT_REGISTRY,
    GUARDED_STAGES,
    ModelSpec,
    Settings,
    settings_for,
)


def plan(
    desired: LoadedSpec,
    observed: RegistryState,
    now: datetime,
    records: Mapping[str, Sequence[AuditRun]] | None = None,
    *,
    registry: str = DEFAULT_REGISTRY,
    copies: Mapping[tuple[str, str], int] | None = None,
    file: str | None = None,
) -> Plan:
    """Every change that makes the registry match the file, sorted, with policy findings.
    `now` is the clock the soak-time policy measures against (the command's one clock); `records` are
    the audit runs of the models whose history blocks were altered (see history_drifted).
    In a tree: `registry` is the name of the registry the file's models live in, `copies` the
    live version each copy_from entry was copied into, by (model, entry key), as the shell
    matched them by provenance (registry/copy.find_copies), and `file` the file as errors
    name it."""
    changes: list[Change] = []
    blocked: dict[str, tuple[str, ...]] = {}
    unmanaged: dict[str, tuple[int, ...]] = {}
    issues: list[SpecIssue] = []
    limits: dict[str, dict[str, int]] = {}
    spec = desired.spec
    for name, model in spec.models.items():
        live = observed.models.get(name)
        settings = settings_for(spec, model)
        limits[name] = settings.max_per_stage
        runs = tuple((records or {}).get(name, ()))
        planner = _ModelPlanner(desired, name, model, live, settings, now, runs)
        planner.registry = registry
        planner.copies = {e: v for (m, e), v in (copies or {}).items() if m == name}
        planner.file = file or str(desired.path)
        changes.extend(planner.run())
        issues.extend(planner.issues)
        if planner.blocked:
            blocked[name] = tuple(planner.blocked)
        if planner.unmanaged:
            unmanaged[name] = tuple(planner.unmanaged)
    try:
        changes.extend(plan_webhooks(desired, observed, file or str(desired.path)))
    except SpecError as exc:
        issues.extend(exc.issues)
    if issues:
        raise SpecError(issues)
    return Plan(
        changes=tuple(_order_transitions(sorted(changes, key=sort_key), observed, limits)),
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
        now: datetime,
        records: tuple[AuditRun, ...] = (),
    ) -> None:
        self.now = now
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
        self.records = records  # the model's audit runs, when a history block needs rebuilding
        self.registry = DEFAULT_REGISTRY  # the registry this model lives in (a tree's name)
        self.copies: dict[str, int] = {}  # copy_from entry key -> the live version copied
        self.file = str(desired.path)  # the file as errors name it

    def run(self) -> list[Change]:
        if not self.exists:
            self.out.append(CreateModel(model=self.name))
        matcher = VersionMatcher(
            self.desired, self.name, self.model, self.live, self.exists, self.file,
            self.registry, self.copies,
        )  # fmt: skip
        slots = matcher.match()
        self.out += matcher.out
        self.issues += matcher.issues
        self.unmanaged = matcher.unmanaged
        self._model_fields()
        for slot in slots:
            self._version_fields(slot)
        final = self._stages(slots)
        self._aliases(slots)
        self._mirror(final, slots)
        self._deletions(slots, final)
        self._history()
        self._policies(slots)
        # a version this plan moves, restores or deletes is not "left alone"
        touched = {
            t.version
            for c in self.out
            if isinstance(t := getattr(c, "target", None), Target) and t.version is not None
        }
        self.unmanaged = [v for v in self.unmanaged if v not in touched]
        return self.out

    def _issue(self, loc: Loc, message: str, hint: str) -> None:
        _, pos = locate(loc, self.desired.positions)
        self.issues.append(
            SpecIssue(self.file, pos.line, pos.column, format_loc(loc), message, hint)
        )

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

    def _version_fields(self, slot: Slot) -> None:
        entry, live, name, target = slot.entry, slot.observed, self.name, slot.target
        if entry.deleted:
            return
        if entry.description is not None:
            want = entry.description.rstrip()
            have = live.user_description if live else ""
            if have != want:
                before = have if live else None
                drift = live is not None and text_altered(have, live.tags)
                self.out.append(
                    SetVersionDescription(
                        model=name, target=target, before=before, after=want, drift=drift
                    )
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

    def _history(self) -> None:
        """A history block that differs from the one the tool last wrote (removed, or edited by
        hand) is drift: write it back, rebuilt from the audit record."""
        deleted = {c.target.version for c in self.out if isinstance(c, DeleteVersion)}
        for v in self.live.versions:
            if v.version in deleted or not history_altered(v.description, v.tags):
                continue
            block = split_history(v.description)[1]
            rebuilt = rebuild_block(self.records, v.version)
            if rebuilt and rebuilt != block:
                self.out.append(
                    RestoreHistory(
                        model=self.name,
                        target=Target(version=v.version),
                        before=block,
                        after=rebuilt,
                    )
                )

    # --- stages -----------------------------------------------------------------------------------

    def _stages(self, slots: list[Slot]) -> dict[int | str, str]:
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
        deleted = {slot.name for slot in slots if slot.entry.deleted}
        counts = Counter(s for k, s in final.items() if k not in deleted)
        for stage, limit in self.settings.max_per_stage.items():
            if counts[stage] > limit:
                names = sorted(str(k) for k, s in final.items() if s == stage)
                self.blocked.append(
                    f"policy max_per_stage: {counts[stage]} versions would be in {stage} "
                    f"({', '.join(names)}), at most {limit} allowed; declare their stages "
                    "or set archive_previous: true"
                )
        self.targets = targets
        return final

    # --- aliases ---------------------------------------------------------------------------------

    def _aliases(self, slots: list[Slot]) -> None:
        applied = recorded_aliases(self.live.tags)
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

    # --- stages mirrored to aliases, deletions, policies ---------------------------------------

    def _mirror(self, final: dict[int | str, str], slots: list[Slot]) -> None:
        """mirror_stages_to_aliases: each alias follows the (newest) holder of its stage."""
        for stage, alias in sorted(self.settings.mirror_stages_to_aliases.items()):
            holders = [k for k, s in final.items() if s == stage]
            before = self.live.aliases.get(alias)
            if not holders:
                if before is not None:
                    self.out.append(
                        DeleteAlias(model=self.name, alias=alias, before=before, mirrors=stage)
                    )
                continue
            numbered = [k for k in holders if isinstance(k, int)]
            newest = max(numbered) if numbered else holders[0]
            target = self.targets[newest]
            if target.version is None or target.version != before:
                self.out.append(
                    SetAlias(
                        model=self.name, alias=alias, before=before, target=target, mirrors=stage
                    )
                )

    def _deletions(self, slots: list[Slot], final: dict[int | str, str]) -> None:
        """`deleted: true`: only a version in None or Archived that no alias names."""
        aliases = dict(self.live.aliases)
        for change in self.out:
            if isinstance(change, SetAlias) and change.target.version is not None:
                aliases[change.alias] = change.target.version
            elif isinstance(change, DeleteAlias):
                aliases.pop(change.alias, None)
        for slot in slots:
            if not slot.entry.deleted or slot.observed is None:
                continue
            number = slot.observed.version
            stage = final.get(number, slot.observed.stage)
            named = sorted(a for a, v in aliases.items() if v == number)
            if stage in GUARDED_STAGES:
                self.blocked.append(
                    f"deleting v{number} refused: it is in {stage}; move it to Archived first"
                )
            elif named:
                self.blocked.append(
                    f"deleting v{number} refused: alias {', '.join(named)} names it; move the alias first"
                )
            self.out.append(DeleteVersion(model=self.name, target=slot.target, stage=stage))

    def _policies(self, slots: list[Slot]) -> None:
        policy = self.settings.policy
        allowed = {
            str(k): [str(s) for s in v] for k, v in (policy.allowed_transitions or {}).items()
        }
        by_number = {slot.observed.version: slot.observed for slot in slots if slot.observed}
        for change in self.out:
            if isinstance(change, TransitionStage) and change.reason == "declared":
                sources = allowed.get(change.after)
                if sources is not None and change.before not in sources:
                    self.blocked.append(
                        f"policy allowed_transitions: {change.target.label()} {change.before} -> "
                        f"{change.after} is not allowed ({change.after} only from {', '.join(sources) or 'nowhere'})"
                    )
                if change.after == "Production" and policy.min_time_in_staging:
                    self._soak(
                        change,
                        by_number.get(change.target.version or -1),
                        policy.min_time_in_staging,
                    )
            if isinstance(change, SetAlias) and change.before is not None:
                protected = policy.protected_aliases or []
                gated = {k.lower() for k in self.model.gates}
                if change.alias in protected and f"alias:{change.alias}".lower() not in gated:
                    self.blocked.append(
                        f"policy protected_aliases: alias {change.alias} moves only through gates; "
                        f"add gates for alias:{change.alias}"
                    )

    def _soak(self, change: TransitionStage, version: VersionState | None, needed: float) -> None:
        label = change.target.label()
        since = (
            _stage_since(version) if version is not None and version.stage == "Staging" else None
        )
        if since is None:
            self.blocked.append(
                f"policy min_time_in_staging: {label} is not in Staging; it needs "
                f"{_duration(needed)} there before Production"
            )
            return
        elapsed = (self.now - since).total_seconds()
        if elapsed < needed:
            self.blocked.append(
                f"policy min_time_in_staging: {label} has been in Staging for {_duration(elapsed)}, "
                f"needs {_duration(needed)} ({_duration(needed - elapsed)} to go)"
            )


def _stage_since(version: VersionState) -> datetime | None:
    """When the version entered its stage: the tool's own record, else the registry's last update
    (MLflow keeps no transition time; last_updated_timestamp is the closest it records)."""
    raw = read_record(version.tags).get("stage_since")
    if isinstance(raw, str) and raw:
        try:
            parsed = datetime.fromisoformat(raw)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    if version.updated_at:
        return datetime.fromtimestamp(version.updated_at / 1000, tz=UTC)
    return None


def _duration(seconds: float) -> str:
    left = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    if left or not parts:
        parts.append(f"{left}s")
    return " ".join(parts)


def _order_transitions(
    changes: list[Change], observed: RegistryState, limits: dict[str, dict[str, int]]
) -> list[Change]:
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
        # one block per model: each model's transitions are ordered against its own stages
        while (
            j < len(changes)
            and isinstance(changes[j], TransitionStage)
            and changes[j].model == changes[i].model
        ):
            j += 1
        block = [c for c in changes[i:j] if isinstance(c, TransitionStage)]
        live = observed.models.get(block[0].model)
        stages = {str(v.version): v.stage for v in live.versions} if live else {}
        model_limits = limits.get(block[0].model, {})
        while block:
            pick = next((t for t in block if not _empties(t, stages)), block[0])
            block.remove(pick)
            pick = _hand_over(pick, block, stages, model_limits)
            stages[_key(pick.target)] = pick.after
            out.append(pick)
        i = j
    return out


def _hand_over(
    t: TransitionStage,
    pending: list[TransitionStage],
    stages: dict[str, str],
    limits: dict[str, int],
) -> TransitionStage:
    """Entering a stage whose other holders all leave it in this plan and whose limit they would
    break for a moment: archive them in the same call instead (MLflow does it in one transaction)."""
    if t.after not in GUARDED_STAGES:
        return t
    others = {k for k, s in stages.items() if s == t.after and k != _key(t.target)}
    leaving = {_key(c.target) for c in pending if c.before == t.after}
    limit = limits.get(t.after)
    if not others or not others <= leaving or limit is None or len(others) + 1 <= limit:
        return t
    for k in others:
        stages[k] = "Archived"
    return t.model_copy(update={"archive_others": True})


def _key(target: Target) -> str:
    return str(target.version) if target.version is not None else str(target.entry)


def _empties(t: TransitionStage, stages: dict[str, str]) -> bool:
    if t.before not in GUARDED_STAGES:
        return False
    return not any(s == t.before for k, s in stages.items() if k != _key(t.target))


def _stage_drifted(version: VersionState | None) -> bool:
    """The tool last moved this version to a stage it no longer holds: someone moved it by hand."""
    if version is None:
        return False
    last = last_move(version.tags)
    return last is not None and last[1] != version.stage


def history_drifted(observed: RegistryState) -> list[str]:
    """The models with a version whose history block was removed or edited by hand: the planner
    needs their audit records to rebuild it."""
    return sorted(
        name
        for name, model in observed.models.items()
        if any(history_altered(v.description, v.tags) for v in model.versions)
    )
