"""An in-memory registry that satisfies RegistryPort and checks the apply invariants as it goes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from mlflow_gitops.errors import LockError, RegistryError
from mlflow_gitops.observed import (
    ModelState,
    RegistryState,
    RunSummary,
    VersionState,
    WebhookState,
)
from mlflow_gitops.permissions import current_user
from mlflow_gitops.plan.changes import WebhookFields
from mlflow_gitops.record import AUDIT_EXPERIMENT, SourceRef, provenance_tags
from mlflow_gitops.record.run import AuditRun, RecordFinish, RecordStart
from mlflow_gitops.registry.copy import Copied, CopyRun, SourceVersion, find_copies
from mlflow_gitops.registry.port import RegistryPort
from mlflow_gitops.registry.webhooks import WebhooksUnsupported


@dataclass
class FakeWebhooks:
    """A server's webhooks in memory; `secrets` holds what MLflow would store (never returns)."""

    hooks: dict[str, WebhookState] = field(default_factory=dict)  # id -> webhook
    secrets: dict[str, str | None] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def read(self) -> tuple[WebhookState, ...]:
        self.calls.append(("read",))
        return tuple(sorted(self.hooks.values(), key=lambda h: (h.name, h.webhook_id)))

    def create(self, name: str, fields: WebhookFields, secret: str | None) -> str:
        self.calls.append(("create", name))
        hook_id = f"wh-{len(self.hooks) + 1}"
        self.hooks[hook_id] = WebhookState(
            webhook_id=hook_id,
            name=name,
            url=fields.url or "",
            events=tuple(sorted(fields.events or ())),
            description=fields.description or "",
            status=fields.status or "ACTIVE",
        )
        self.secrets[hook_id] = secret
        return hook_id

    def update(self, webhook_id: str, fields: WebhookFields, secret: str | None) -> None:
        self.calls.append(("update", webhook_id))
        changed = {k: v for k, v in fields if v is not None}
        self.hooks[webhook_id] = replace(self.hooks[webhook_id], **changed)
        if secret is not None:
            self.secrets[webhook_id] = secret

    def delete(self, webhook_id: str) -> None:
        self.calls.append(("delete", webhook_id))
        del self.hooks[webhook_id]
        self.secrets.pop(webhook_id, None)


@dataclass
class FakeRegistry:
    """Holds ModelStates; records every call; can fail on the Nth write."""

    models: dict[str, ModelState] = field(default_factory=dict)
    runs: set[str] = field(default_factory=set)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    fail_on: int | None = None  # 1-based index of the write call that raises
    writes: int = 0
    gaps: list[str] = field(default_factory=list)  # held stages/aliases left empty in between
    audit_runs: list[AuditRun] = field(default_factory=list)  # the audit experiment's runs
    audit_models: dict[str, tuple[str, ...]] = field(default_factory=dict)  # run -> models
    audit_finished: dict[str, RecordFinish] = field(default_factory=dict)
    record_error: str | None = None  # "start" or "finish": that audit call fails
    unlock_error: str | None = None  # deleting the apply lock fails with this message
    lacking: set[tuple[str, str]] = field(default_factory=set)  # (model, permission) not held
    audit_experiment: str = AUDIT_EXPERIMENT
    unreadable: frozenset[tuple[str, int]] = frozenset()
    unsigned: frozenset[tuple[str, int]] = frozenset()  # versions whose model has no signature
    requires_signature: bool = False  # refuses models without a signature, as UC does
    user: str = field(default_factory=current_user)  # who its requests act as, for messages
    hooks: FakeWebhooks | None = None  # the server's webhooks; None: a server without (2.x)
    refusals: dict[str, str] = field(default_factory=dict)  # source -> why it cannot register

    def webhooks(self) -> FakeWebhooks:
        if self.hooks is None:
            raise WebhooksUnsupported.at("memory://fake")
        return self.hooks

    # --- reading -----------------------------------------------------------------------------

    def read(self, names: Sequence[str] | None = None) -> RegistryState:
        self.calls.append(("read",))
        wanted = set(self.models) if names is None else set(names)
        return RegistryState(models={n: m for n, m in sorted(self.models.items()) if n in wanted})

    def missing_runs(self, run_ids: Sequence[str]) -> set[str]:
        return {r for r in run_ids if r not in self.runs}

    def refused_registrations(self, sources: Sequence[str]) -> dict[str, str]:
        return {s: self.refusals[s] for s in sources if s in self.refusals}

    def search_runs(
        self, experiment: str, filter_string: str, order_by: list[str], max_results: int
    ) -> list[RunSummary]:
        return [RunSummary(run_id=r) for r in sorted(self.runs)][:max_results]

    def can_record(self) -> bool:
        return ("<audit>", "EDIT") not in self.lacking

    def can(self, name: str, permission: str) -> bool:
        self.calls.append(("can", name, permission))
        return (name, permission) not in self.lacking

    # --- writing -----------------------------------------------------------------------------

    def _write(self, *call: str) -> None:
        self.writes += 1
        self.calls.append(call)
        if self.fail_on is not None and self.writes == self.fail_on:
            raise RegistryError(f"injected failure on {call[0]}", "")

    def _update(self, name: str, **kw: object) -> None:
        self.models[name] = replace(self.models[name], **kw)  # type: ignore[arg-type]

    def _update_version(self, name: str, number: int, **kw: object) -> None:
        model = self.models[name]
        versions = tuple(
            replace(v, **kw) if v.version == number else v  # type: ignore[arg-type]
            for v in model.versions
        )
        if all(v.version != number for v in versions):
            raise RegistryError(f"version {number} of {name} does not exist", "")
        self._update(name, versions=versions)

    @contextmanager
    def lock(self, holder: str) -> Iterator[None]:
        self.calls.append(("lock", "<registry>", holder))
        yield
        if self.unlock_error:
            raise LockError(self.unlock_error, "its lease runs out 30 s after the apply ended")
        self.calls.append(("unlock", "<registry>"))

    def create_model(self, name: str) -> None:
        self._write("create_model", name)
        if name in self.models:
            raise RegistryError(f"model {name} exists", "")
        self.models[name] = ModelState(name=name)

    def register_version(self, name: str, source: str, run_id: str | None) -> int:
        self._write("register_version", name, source)
        model = self.models[name]
        number = max((v.version for v in model.versions), default=0) + 1
        new = VersionState(version=number, source=source, run_id=run_id)
        self._update(name, versions=(*model.versions, new))
        return number

    def set_model_description(self, name: str, text: str) -> None:
        self._write("set_model_description", name)
        self._update(name, description=text)

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self._write("set_model_tag", name, key)
        self._update(name, tags={**self.models[name].tags, key: value})

    def delete_model_tag(self, name: str, key: str) -> None:
        self._write("delete_model_tag", name, key)
        tags = dict(self.models[name].tags)
        tags.pop(key)
        self._update(name, tags=tags)

    def set_version_description(self, name: str, version: int, text: str) -> None:
        self._write("set_version_description", name, str(version))
        self._update_version(name, version, description=text)

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self._write("set_version_tag", name, str(version), key)
        v = self.models[name].version(version)
        assert v is not None
        self._update_version(name, version, tags={**v.tags, key: value})

    def delete_version_tag(self, name: str, version: int, key: str) -> None:
        self._write("delete_version_tag", name, str(version), key)
        v = self.models[name].version(version)
        assert v is not None
        tags = dict(v.tags)
        tags.pop(key)
        self._update_version(name, version, tags=tags)

    def transition_stage(
        self, name: str, version: int, stage: str, archive_others: bool = False
    ) -> None:
        self._write("transition_stage", name, str(version), stage)
        before = self.models[name].version(version)
        assert before is not None
        if archive_others:  # one transaction, as MLflow's archive_existing_versions
            for other in self.models[name].versions:
                if other.stage == stage and other.version != version:
                    self._update_version(name, other.version, stage="Archived")
        self._update_version(name, version, stage=stage)
        old = before.stage
        if old in ("Staging", "Production") and not any(
            v.stage == old for v in self.models[name].versions
        ):
            self.gaps.append(f"{name}: {old} left without a holder")

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._write("set_alias", name, alias, str(version))
        if self.models[name].version(version) is None:
            raise RegistryError(f"version {version} of {name} does not exist", "")
        self._update(name, aliases={**self.models[name].aliases, alias: version})

    def delete_alias(self, name: str, alias: str) -> None:
        self._write("delete_alias", name, alias)
        aliases = dict(self.models[name].aliases)
        aliases.pop(alias)
        self._update(name, aliases=aliases)

    def delete_version(self, name: str, version: int) -> None:
        self._write("delete_version", name, str(version))
        model = self.models[name]
        self._update(name, versions=tuple(v for v in model.versions if v.version != version))

    # --- the audit record ----------------------------------------------------------------------

    def start_record(self, start: RecordStart) -> str:
        self.calls.append(("start_record", "<audit>"))
        if self.record_error == "start":
            raise RegistryError("injected: PERMISSION_DENIED on the audit experiment", "")
        run_id = f"run{len(self.audit_runs) + 1}"
        ms = int(start.started_at.timestamp() * 1000) + len(self.audit_runs)  # distinct, ordered
        self.audit_runs.append(AuditRun(run_id, ms, start.context, "RUNNING"))
        self.audit_models[run_id] = start.models
        return run_id

    def finish_record(self, run_id: str, finish: RecordFinish) -> None:
        self.calls.append(("finish_record", "<audit>", run_id))
        if self.record_error == "finish":
            raise RegistryError("injected: the audit server went away", "")
        self.audit_finished[run_id] = finish
        status = "FINISHED" if finish.ok else "FAILED"
        self.audit_runs = [
            replace(r, status=status) if r.run_id == run_id else r for r in self.audit_runs
        ]

    def read_records(self, names: Sequence[str]) -> dict[str, tuple[AuditRun, ...]]:
        self.calls.append(("read_records", "<audit>", *names))
        out = {}
        for name in names:
            runs = []
            for run in self.audit_runs:
                if name not in self.audit_models[run.run_id]:
                    continue
                done = self.audit_finished.get(run.run_id)
                changes = done.changes.get(name, ()) if done else ()
                runs.append(replace(run, changes=tuple(changes)))
            out[name] = tuple(runs)
        return out

    # --- promotion across registries --------------------------------------------------------
    # `identity` names the fake registry (two fakes with the same identity are "the same
    # server"); `unreadable` holds (model, version) pairs whose files cannot be read

    identity = "fake://registry"

    def describe_source(self, model: str, version: int) -> SourceVersion:
        self.calls.append(("describe_source", model, str(version)))
        ref = SourceRef(self.identity, model, version)
        state = self.models.get(model)
        found = state.version(version) if state else None
        if found is None:
            return SourceVersion(
                ref,
                problem=f"version {version} of model '{model}' does not exist at {ref.registry}",
            )
        problem = ""
        if (model, version) in self.unreadable:
            problem = (
                f"the files of version {version} of model '{model}' at {ref.registry} cannot be "
                f"read: injected"
            )
        unsigned = (
            "the model was logged without a signature" if (model, version) in self.unsigned else ""
        )
        return SourceVersion(ref, found.run_id, found.source, found.source, problem, unsigned)

    def copy_runs(self, ref: SourceRef, run_id: str | None) -> tuple[CopyRun, ...]:
        """A fake copy never leaves a run behind."""
        self.calls.append(("copy_runs", ref.model, str(ref.version)))
        return ()

    def copy_version(
        self, source: RegistryPort, src_model: str, src_version: int, dest_model: str
    ) -> Copied:
        """The adapter's contract: an earlier copy is returned; otherwise one new version with the
        source's own tags and description and the provenance tags (source: models:/ on the same
        server, a new run's model elsewhere)."""
        assert isinstance(source, FakeRegistry), "a fake copies from another fake"
        ref = SourceRef(source.identity, src_model, src_version)
        held = source.models.get(src_model)
        known = held.version(src_version) if held else None
        runs = {ref: known.run_id} if known and known.run_id else None
        made = find_copies(self.models.get(dest_model), [ref], runs).get(ref)
        if made is not None:
            return Copied(made)
        described = source.describe_source(src_model, src_version)
        if not described.ok:
            raise RegistryError(f"cannot copy {src_model}/{src_version}: {described.problem}", "")
        origin = source.models[src_model].version(src_version)
        assert origin is not None
        self._write("copy_version", dest_model, f"{ref.registry}:{src_model}/{src_version}")
        if dest_model not in self.models:
            self.models[dest_model] = ModelState(name=dest_model)
        same = ref.registry == self.identity
        run_id = origin.run_id if same else f"copy{self.writes}"
        model = self.models[dest_model]
        number = max((v.version for v in model.versions), default=0) + 1
        new = VersionState(
            version=number,
            source=f"models:/{src_model}/{src_version}" if same else f"runs:/{run_id}/model",
            run_id=run_id,
            description=origin.user_description,
            tags={**origin.user_tags, **provenance_tags(ref, origin.run_id)},
        )
        self._update(dest_model, versions=(*model.versions, new))
        return Copied(number)


def observed_from_data(data: dict[str, dict[str, object]]) -> dict[str, ModelState]:
    """Case-file `observed:` mapping -> ModelStates."""
    out = {}
    for name, model in (data or {}).items():
        versions = tuple(
            VersionState(
                version=int(v["version"]),
                stage=str(v.get("stage", "None")),
                source=str(v.get("source", f"runs:/{'0' * 32}/model")),
                run_id=v.get("run_id"),  # type: ignore[arg-type]
                description=str(v.get("description", "")),
                tags=dict(v.get("tags", {})),  # type: ignore[call-overload]
            )
            for v in model.get("versions", [])  # type: ignore[attr-defined]
        )
        out[name] = ModelState(
            name=name,
            description=str(model.get("description", "")),
            tags=dict(model.get("tags", {})),  # type: ignore[call-overload]
            aliases=dict(model.get("aliases", {})),  # type: ignore[call-overload]
            versions=versions,
        )
    return out


def webhooks_from_data(data: list[dict[str, object]] | None) -> tuple[WebhookState, ...] | None:
    """Case-file `observed_webhooks:` list -> WebhookStates (absent: None, not read)."""
    if data is None:
        return None
    return tuple(
        WebhookState(
            webhook_id=str(h["id"]),
            name=str(h["name"]),
            url=str(h["url"]),
            events=tuple(sorted(h["events"])),  # type: ignore[call-overload]
            description=str(h.get("description", "")),
            status=str(h.get("status", "ACTIVE")),
        )
        for h in data
    )
