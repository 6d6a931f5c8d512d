"""The applier: an interpreter of the plan against the registry port, models in parallel. The
lock, the re-read under it and the audit record around it are the apply use case's
(reconcile/apply.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from mlflow_gitops.audit import AuditContext
from mlflow_gitops.errors import GitopsError
from mlflow_gitops.observed import ModelState, RegistryState
from mlflow_gitops.outcome import Step
from mlflow_gitops.plan.changes import (
    Change,
    CopyVersion,
    CreateModel,
    CreateWebhook,
    DeleteAlias,
    DeleteModelTag,
    DeleteVersion,
    DeleteVersionTag,
    DeleteWebhook,
    Plan,
    RegisterVersion,
    RestoreHistory,
    SetAlias,
    SetModelDescription,
    SetModelTag,
    SetVersionDescription,
    SetVersionTag,
    Target,
    TransitionStage,
    UpdateWebhook,
)
from mlflow_gitops.record import (
    LEGACY_TAGS,
    RECORD_TAG,
    RESTORED,
    history_line,
    join_history,
    model_record,
    read_record,
    recorded_aliases,
    split_history,
    version_record,
)
from mlflow_gitops.record.run import RecordedChange
from mlflow_gitops.registry.port import RegistryPort
from mlflow_gitops.registry.webhooks import apply_webhook

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Applied:
    """Every step in plan order, and what each model's changes record in the audit run."""

    steps: tuple[Step, ...]
    recorded: dict[str, tuple[RecordedChange, ...]] = field(default_factory=dict)


def apply(
    plan: Plan,
    observed: RegistryState,
    registry: RegistryPort,
    audit: AuditContext,
    now: datetime,
    *,
    parallelism: int = 4,
    progress: Progress | None = None,
    sources: Mapping[str, RegistryPort] | None = None,
    fresh: Mapping[str, str] | None = None,
    record: str | None = None,
) -> Applied:
    """Apply every model that is not blocked: each model's steps in order, models concurrently.
    `fresh`: each model's digest as read again just before (under the apply lock); a model
    whose digest is not the plan's is refused. `record`: the audit run the annotations name.
    `sources` are the registries copies come from, by their names in registry.yaml."""
    models = plan.models
    runnable = [m for m in models if m not in plan.blocked]
    results: dict[str, list[Step]] = blocked(plan)
    recorded: dict[str, tuple[RecordedChange, ...]] = {}
    now_fresh = dict(fresh or {})

    def run(model: str) -> tuple[str, list[Step]]:
        changes = plan.changes_for(model)
        if model in now_fresh and now_fresh[model] != plan.observed[model]:
            return model, _refused(model, changes, STALE)
        live = observed.models.get(model) or ModelState(name=model)
        applier = _ModelApplier(model, live, registry, audit, now, record, dict(sources or {}))
        steps = applier.run(changes)
        recorded[model] = tuple(applier.recorded)
        return model, steps

    done = 0
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(runnable) or 1))) as pool:
        for model, steps in pool.map(run, runnable):
            results[model] = steps
            done += 1
            if progress:
                progress(model, done, len(runnable))
    return Applied(tuple(s for m in models for s in results.get(m, [])), recorded)


def blocked(plan: Plan) -> dict[str, list[Step]]:
    """The steps of the blocked models: each change, blocked, with the reasons."""
    return {
        m: [Step(m, c, "blocked", "; ".join(plan.blocked[m])) for c in plan.changes_for(m)]
        for m in plan.models
        if m in plan.blocked
    }


def refuse(plan: Plan, why: str) -> tuple[Step, ...]:
    """Every step of a plan none of which was applied: the first change of each model that is
    not blocked failed for `why`, its others not applied; the blocked models blocked."""
    steps = blocked(plan)
    for m in plan.models:
        if m not in plan.blocked:
            steps[m] = _refused(m, plan.changes_for(m), why)
    return tuple(s for m in plan.models for s in steps.get(m, []))


STALE = (
    "registry changed since plan: another apply or a person wrote this model; nothing of it was "
    "applied; run plan again and review"
)


def _refused(model: str, changes: list[Change], why: str) -> list[Step]:
    if not changes:
        return []
    return [Step(model, changes[0], "failed", why)] + [
        Step(model, c, "not applied") for c in changes[1:]
    ]


@dataclass
class _ModelApplier:
    model: str
    live: ModelState
    registry: RegistryPort
    audit: AuditContext
    now: datetime
    record: str | None = None  # the audit run of this apply
    sources: dict[str, RegistryPort] = field(default_factory=dict)  # copies come from these
    numbers: dict[str, int] = field(default_factory=dict)  # file entry -> registered version
    descriptions: dict[int, str] = field(default_factory=dict)
    events: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    history: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    aliases: dict[str, int] = field(default_factory=dict)
    moved: set[int] = field(default_factory=set)  # versions whose stage changed
    handed_over: set[int] = field(default_factory=set)  # archived by an archive_others call
    stages: dict[int, str] = field(default_factory=dict)  # stages as this apply left them
    deleted: set[int] = field(default_factory=set)
    recorded: list[RecordedChange] = field(default_factory=list)  # for the audit run

    def run(self, changes: list[Change]) -> list[Step]:
        self.descriptions = {v.version: v.description for v in self.live.versions}
        self.aliases = dict(self.live.aliases)
        steps: list[Step] = []
        for i, change in enumerate(changes):
            try:
                detail = self.execute(change)
            except GitopsError as exc:
                steps.append(Step(self.model, change, "failed", exc.message))
                steps.extend(Step(self.model, c, "not applied") for c in changes[i + 1 :])
                break
            steps.append(Step(self.model, change, "applied", detail))
        applied = changes[: sum(s.status == "applied" for s in steps)]
        if applied:
            try:
                self.annotate(
                    alias_changed=any(isinstance(c, SetAlias | DeleteAlias) for c in changes),
                    model_changed=any(isinstance(c, _MODEL_CHANGES) for c in applied),
                )
            except GitopsError as exc:
                steps.append(Step(self.model, "annotate versions", "failed", exc.message))
        return steps

    def number(self, target: Target) -> int:
        if target.version is not None:
            return target.version
        assert target.entry is not None
        return self.numbers[target.entry]

    def execute(self, change: Change) -> str:
        """Make one change; returns what the apply's output adds to it ("" mostly; a copy
        says what it did with the runs an interrupted apply left)."""
        r, name = self.registry, self.model
        match change:
            case CreateModel():
                r.create_model(name)
            case RegisterVersion(entry=entry, source=source, run_id=run_id):
                number = r.register_version(name, source, run_id)
                self.numbers[entry] = number
                self.descriptions[number] = ""
                self._event(number, f"registered from {source}", f"registered from {source}")
            case CopyVersion(entry=entry):
                origin = self.sources.get(change.source_registry)
                if origin is None:
                    raise GitopsError(
                        f"cannot {change.text()}: registry '{change.source_registry}' is not open",
                        "apply the whole tree, or select the source registry too",
                    )
                copied = r.copy_version(origin, change.source_model, change.source_version, name)
                number = copied.version
                self.numbers[entry] = number
                # the copy carries the source's description: the annotation keeps it
                made = r.read([name]).models.get(name)
                state = made.version(number) if made else None
                self.descriptions[number] = state.description if state else ""
                self._event(number, change.text(), change.text())
                return copied.detail
            case SetModelDescription(after=after):
                r.set_model_description(name, after)
            case SetModelTag(key=key, after=after):
                r.set_model_tag(name, key, after)
            case DeleteModelTag(key=key):
                r.delete_model_tag(name, key)
            case SetVersionDescription(target=target, after=after):
                number = self.number(target)
                text = join_history(after, split_history(self.descriptions.get(number, ""))[1])
                r.set_version_description(name, number, text)
                self.descriptions[number] = text
                self._event(number, "description", "description updated")
            case RestoreHistory(target=target, after=after):
                number = self.number(target)
                text = join_history(split_history(self.descriptions.get(number, ""))[0], after)
                r.set_version_description(name, number, text)
                self.descriptions[number] = text
                self._event(number, "history restored", RESTORED)
            case SetVersionTag(target=target, key=key, after=after):
                number = self.number(target)
                r.set_version_tag(name, number, key, after)
                self._event(number, f"tag {key}", f"tag {key} set to '{after}'")
            case DeleteVersionTag(target=target, key=key):
                number = self.number(target)
                r.delete_version_tag(name, number, key)
                self._event(number, f"tag {key} deleted", f"tag {key} deleted")
            case TransitionStage(target=target, before=before, after=after):
                number = self.number(target)
                if after == "Archived" and number in self.handed_over:
                    pass  # MLflow archived it with the new holder's promotion, in one call
                else:
                    r.transition_stage(name, number, after, change.archive_others)
                if change.archive_others:
                    self.handed_over |= {
                        v.version
                        for v in self.live.versions
                        if v.version != number and self._stage_now(v.version) == after
                    }
                self.stages[number] = after
                self.moved.add(number)
                self._event(
                    number, f"{before} -> {after}", f"{before} -> {after}", self._why(change), True
                )
            case SetAlias(alias=alias, before=before, target=target):
                number = self.number(target)
                r.set_alias(name, alias, number)
                self.aliases[alias] = number
                was = f"was version {before}" if before is not None else ""
                self._event(number, f"alias {alias}", f"alias {alias} set", was)
                if before is not None and before != number:
                    self._event(
                        before, f"alias {alias} moved", f"alias {alias} moved to version {number}"
                    )
            case DeleteAlias(alias=alias, before=before):
                r.delete_alias(name, alias)
                self.aliases.pop(alias, None)
                self._event(before, f"alias {alias} removed", f"alias {alias} removed")
            case DeleteVersion(target=target):
                number = self.number(target)
                r.delete_version(name, number)
                self.deleted.add(number)
            case CreateWebhook() | UpdateWebhook() | DeleteWebhook():
                apply_webhook(r.webhooks(), change)
            case _:
                assert_never(change)
        return ""

    def _stage_now(self, number: int) -> str:
        if number in self.stages:
            return self.stages[number]
        live = self.live.version(number)
        return live.stage if live else "None"

    def _why(self, change: TransitionStage) -> str:
        if change.reason == "archive_previous" and change.replaced_by:
            holders = ", ".join(
                str(self.numbers.get(str(h), h)) if isinstance(h, str) else str(h)
                for h in change.replaced_by
            )
            return f"replaced by version {holders}"
        if change.reason == "unmanaged":
            return "not in registry.yaml, unmanaged_versions: archive"
        return ""

    def _event(
        self, number: int, summary: str, what: str, note: str = "", first: bool = False
    ) -> None:
        if first:
            self.events[number].insert(0, summary)
        else:
            self.events[number].append(summary)
        self.history[number].append(history_line(f"{self.now:%Y-%m-%d}", what, note, self.audit))
        self.recorded.append(RecordedChange(number, what, note))

    def annotate(self, alias_changed: bool, model_changed: bool) -> None:
        """One record tag per touched version, complete for this apply (a field it does not know
        is null, never an earlier apply's value), and a history line per change in the version's
        description: two writes per version. The model's record is written when the apply
        changed the model itself (created it, or set its description, tags or aliases): the
        versions' records and the audit run tell every apply that touched only versions."""
        stamp = self.now.isoformat(timespec="seconds")
        for number in sorted(set(self.events) - self.deleted):
            live = self.live.version(number)
            tags = live.tags if live else {}
            user, block = split_history(self.descriptions.get(number, ""))
            text = join_history(user, block, self.history[number])
            self.registry.set_version_description(self.model, number, text)
            since = stamp if number in self.moved else read_record(tags).get("stage_since")
            record = version_record(
                self.audit,
                stamp,
                self.events[number],
                stage_since=since,
                audit_run=self.record,
                description=text,
            )
            self.registry.set_version_tag(self.model, number, RECORD_TAG, record)
            for key in sorted(set(LEGACY_TAGS.values()) & set(tags)):
                self.registry.delete_version_tag(self.model, number, key)  # once, on upgrade
        legacy = sorted(set(LEGACY_TAGS.values()) & set(self.live.tags))
        if not (model_changed or legacy):
            return
        record = model_record(
            self.audit,
            stamp,
            aliases=self.aliases if alias_changed else recorded_aliases(self.live.tags),
            audit_run=self.record,
        )
        self.registry.set_model_tag(self.model, RECORD_TAG, record)
        for key in legacy:
            self.registry.delete_model_tag(self.model, key)


# the changes to the registered model itself, which its own record annotates
_MODEL_CHANGES = (
    CreateModel,
    SetModelDescription,
    SetModelTag,
    DeleteModelTag,
    SetAlias,
    DeleteAlias,
)
