"""The registry operations the tool needs, and nothing more: one small protocol per capability,
and `RegistryPort`, all of them, which the orchestrator opens. A consumer takes the narrowest one
it needs (the applier: Writes; history: Records; the copy planner: Copies; webhooks: Webhooks...).

A backend implements these; the apply lock and the audit record are written once over smaller
primitives (registry/lock.LockStore, registry/audit.RecordStore), so a backend may implement
those and take `lock`, `start_record`, `finish_record` and `read_records` from them."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from mlflow_gitops.observed import RegistryState, RunSummary, WebhookState
from mlflow_gitops.permissions import Permission
from mlflow_gitops.plan.changes import WebhookFields
from mlflow_gitops.record import SourceRef
from mlflow_gitops.record.run import AuditRun, RecordFinish, RecordStart
from mlflow_gitops.registry.copy import Copied, CopyRun, SourceVersion


class Identity(Protocol):
    """Which registry this is and who its requests act as."""

    @property
    def identity(self) -> str:
        """Which registry this is, without credentials (settings.registry_identity); copies are
        matched by it (registry/copy.py find_copies, a pure function over the read state)."""
        ...

    @property
    def user(self) -> str:
        """Who this registry's requests act as, for messages ("user 'alice'"): a tree's named
        registry's own user, else the one MLflow's variables name (permissions.current_user)."""
        ...


class Reads(Identity, Protocol):
    """The live registry, read up front."""

    def read(self, names: Sequence[str] | None = None) -> RegistryState:
        """The live state of those models (all models when None) in as few calls as possible."""
        ...

    def missing_runs(self, run_ids: Sequence[str]) -> set[str]:
        """Which of these run ids the tracking server does not know."""
        ...

    def refused_registrations(self, sources: Sequence[str]) -> dict[str, str]:
        """Which of these sources (`runs:/<id>/<path>`) this registry would refuse to register,
        each with the reason (Unity Catalog: a model without a signature); {} where a registry
        registers any model, without a call."""
        ...

    def search_runs(
        self, experiment: str, filter_string: str, order_by: list[str], max_results: int
    ) -> list[RunSummary]:
        """The best runs of an experiment, in MLflow's filter and order syntax."""
        ...


class Writes(Protocol):
    """Every change the applier makes."""

    def create_model(self, name: str) -> None: ...

    def register_version(self, name: str, source: str, run_id: str | None) -> int:
        """Register a new version and wait until it is READY; returns its number."""
        ...

    def set_model_description(self, name: str, text: str) -> None: ...

    def set_model_tag(self, name: str, key: str, value: str) -> None: ...

    def delete_model_tag(self, name: str, key: str) -> None: ...

    def set_version_description(self, name: str, version: int, text: str) -> None: ...

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None: ...

    def delete_version_tag(self, name: str, version: int, key: str) -> None: ...

    def transition_stage(
        self, name: str, version: int, stage: str, archive_others: bool = False
    ) -> None:
        """Move the version; with archive_others, the stage's other holders go to Archived in the
        same transaction."""
        ...

    def set_alias(self, name: str, alias: str, version: int) -> None: ...

    def delete_alias(self, name: str, alias: str) -> None: ...

    def delete_version(self, name: str, version: int) -> None: ...


class Permissions(Protocol):
    """What this user may do, asked without changing anything."""

    def can(self, name: str, permission: Permission) -> bool:
        """Whether this user holds the MLflow permission on the registered model, asked without
        changing anything; True where the registry has no permissions."""
        ...

    def can_record(self) -> bool:
        """Whether this user may log the apply's run in the audit experiment, asked without
        changing anything; True where it cannot be known before trying (the run is then opened
        under the lock, before the first change)."""
        ...


class Locking(Protocol):
    """One apply at a time (registry/lock.hold over a backend's LockStore)."""

    def lock(self, holder: str) -> AbstractContextManager[None]:
        """Hold the registry-wide apply lock (one apply at a time) while the block runs."""
        ...


class Records(Protocol):
    """The durable record of every apply (registry/audit.py over a backend's RecordStore)."""

    @property
    def audit_experiment(self) -> str:
        """The name of the experiment that holds the record (configurable per registry)."""
        ...

    def start_record(self, start: RecordStart) -> str:
        """Open this apply's run in the audit experiment (created if absent); returns its id.
        Called before any change, so an apply that cannot record changes nothing."""
        ...

    def finish_record(self, run_id: str, finish: RecordFinish) -> None:
        """Write each model's changes, every step and the gate evidence, and end the run."""
        ...

    def read_records(self, names: Sequence[str]) -> dict[str, tuple[AuditRun, ...]]:
        """The audit runs that touched each model, oldest first: one search per model."""
        ...


class Copies(Identity, Protocol):
    """Promotion across registries."""

    def describe_source(self, model: str, version: int) -> SourceVersion:
        """A version about to be copied out of this registry: its run id, its source, where
        its files are and whether its model has a signature; `problem` says why it cannot be
        copied (absent, files unreadable). An unreachable registry or a refusal raises
        RegistryError."""
        ...

    @property
    def requires_signature(self) -> bool:
        """Whether this registry refuses to register a model without a signature (inputs and
        outputs), as Unity Catalog does: a copy into it is refused at plan."""
        ...

    def copy_runs(self, ref: SourceRef, run_id: str | None) -> tuple[CopyRun, ...]:
        """The runs here that hold a copy of that source's files (the same source run id, or
        for a source without a run the same registry identity), oldest first: what an
        interrupted apply left is found by them (registry/copy.leftovers)."""
        ...

    def copy_version(
        self, source: RegistryPort, src_model: str, src_version: int, dest_model: str
    ) -> Copied:
        """Make dest_model here hold a copy of that version of `source` (same server: a version
        whose source is models:/<model>/<version>; other server: the run's and the model's files
        copied into a run here, or the run an interrupted apply left); returns its number and
        what it did besides. A copy made before is returned as is."""
        ...


class WebhookPort(Protocol):
    """The server's webhooks (MLflow 3.3+): MLflow's admin-only API on basic-auth servers. A
    server without them raises registry/webhooks.WebhooksUnsupported."""

    def read(self) -> tuple[WebhookState, ...]:
        """Every webhook of the server (MLflow never returns their secrets)."""
        ...

    def create(self, name: str, fields: WebhookFields, secret: str | None) -> str:
        """Create a webhook; returns its id."""
        ...

    def update(self, webhook_id: str, fields: WebhookFields, secret: str | None) -> None:
        """Change the fields that are set (and the secret, when given)."""
        ...

    def delete(self, webhook_id: str) -> None: ...


class Webhooks(Protocol):
    """The registry's webhooks, as declared state (registry/webhooks.py plans and applies them)."""

    def webhooks(self) -> WebhookPort:
        """The server's webhooks; raises WebhooksUnsupported on a server without them."""
        ...


class RegistryPort(Reads, Writes, Permissions, Locking, Records, Copies, Webhooks, Protocol):
    """Every capability: implemented by the MLflow adapter (registry/mlflow/adapter.py) and by
    the in-memory fake the unit tests use (tests/fakes.py)."""
