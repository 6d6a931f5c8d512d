"""The MLflow adapter: the registry port (registry/port.py) over MlflowClient, for one
tracking/registry URI, composed from one mixin per capability over one connection (base.py): reads,
writes, permission probes, copies, webhooks, and the primitives of the lock and of the audit record, whose
algorithms are the backend-neutral registry/lock.py and registry/audit.py."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from mlflow_gitops.credentials import Credentials
from mlflow_gitops.record.run import AuditRun, RecordFinish, RecordStart
from mlflow_gitops.registry import audit
from mlflow_gitops.registry.lock import SYSTEM_CLOCK, Clock, hold
from mlflow_gitops.registry.mlflow.audit import RecordPrimitives
from mlflow_gitops.registry.mlflow.copy import Copies
from mlflow_gitops.registry.mlflow.lock import LockPrimitives
from mlflow_gitops.registry.mlflow.probes import Probes
from mlflow_gitops.registry.mlflow.webhooks import MlflowWebhooks
from mlflow_gitops.registry.port import WebhookPort
from mlflow_gitops.settings import Endpoint


class MlflowRegistry(Copies, Probes, LockPrimitives, RecordPrimitives):
    """RegistryPort over MlflowClient, for one registry: `where` is its Endpoint (tracking URI,
    registry URI, credentials, audit experiment), or a tracking URI whose registry URI is
    MLflow's default for it, with `credentials`: this registry's own (a tree's named registry);
    None: MLflow's variables as the process has them. `clock`: where the apply lock's lease
    reads time."""

    def __init__(
        self,
        where: str | Endpoint,
        credentials: Credentials | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(where, credentials)
        self.clock = clock

    @contextmanager
    def lock(self, holder: str) -> Iterator[None]:
        """One apply at a time (registry/lock.py over this adapter's lock primitives)."""
        with hold(self, holder, self.clock):
            yield

    def start_record(self, start: RecordStart) -> str:
        return audit.start_record(self, start)

    def finish_record(self, run_id: str, finish: RecordFinish) -> None:
        audit.finish_record(self, run_id, finish)

    def read_records(self, names: Sequence[str]) -> dict[str, tuple[AuditRun, ...]]:
        return audit.read_records(self, names)

    def webhooks(self) -> WebhookPort:
        """The server's webhooks (MLflow 3.3+), over this adapter's connection."""
        return MlflowWebhooks(self)
