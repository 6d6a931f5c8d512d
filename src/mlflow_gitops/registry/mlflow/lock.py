"""The apply lock's primitives on MLflow (the algorithm is registry/lock.py): the lock is a
registered model named LOCK_MODEL in the tracking server's registry (beside the audit record;
where the models live when the registry URI is the tracking URI), its token, holder, user and
lease in its tags."""

from __future__ import annotations

from datetime import UTC, datetime

from mlflow_gitops.errors import LockError, RegistryError
from mlflow_gitops.record import HOLDER_TAG, LEASE_TAG, LOCK_MODEL, LOCK_TAG, USER_TAG
from mlflow_gitops.registry.lock import HeldLock
from mlflow_gitops.registry.mlflow.base import Connection
from mlflow_gitops.registry.mlflow.errors import denied, error_code, first_line, not_found
from mlflow_gitops.secrets import redact


class LockPrimitives(Connection):
    """registry/lock.LockStore over MLflow's registered models."""

    @property
    def lock_where(self) -> str:
        return f"the registered model {LOCK_MODEL} at {redact(self.tracking_uri)}"

    def create_lock(self, token: str, holder: str, lease_until: float) -> bool:
        from mlflow.exceptions import MlflowException

        tags = {LOCK_TAG: token, HOLDER_TAG: holder, LEASE_TAG: f"{lease_until:.0f}"}
        user = self._username()
        if user:
            tags[USER_TAG] = user[:200]  # who may delete it besides an admin (basic-auth)
        try:
            self.calls += 1
            self.tracking_registry.create_registered_model(
                LOCK_MODEL,
                tags=tags,
                description="Held by a running `mlflow-gitops apply`; deleted when it ends.",
            )
        except MlflowException as exc:
            if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                raise self._lock_error(exc, "create") from exc
            return False
        return True

    def read_lock(self) -> HeldLock | None:
        from mlflow.exceptions import MlflowException

        try:
            self.calls += 1
            m = self.tracking_registry.get_registered_model(LOCK_MODEL)
        except MlflowException as exc:
            if denied(exc):
                return HeldLock(readable=False)  # it exists, but who holds it is hidden from us
            if not_found(exc):
                return None
            raise self._lock_error(exc, "read") from exc
        tags = dict(m.tags or {})
        try:
            lease_until = float(tags.get(LEASE_TAG, "0"))
        except ValueError:
            lease_until = 0.0
        return HeldLock(
            readable=True,
            token=tags.get(LOCK_TAG, ""),
            holder=tags.get(HOLDER_TAG, "?"),
            user=tags.get(USER_TAG, ""),
            lease_until=lease_until,
        )

    def renew_lock(self, lease_until: float) -> None:
        self.tracking_registry.set_registered_model_tag(LOCK_MODEL, LEASE_TAG, f"{lease_until:.0f}")

    def break_lock(self, held: HeldLock) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.calls += 1
            self.tracking_registry.delete_registered_model(LOCK_MODEL)
        except MlflowException as exc:
            if not_found(exc):
                return  # someone else broke or released it meanwhile
            if denied(exc):
                since = datetime.fromtimestamp(held.lease_until, UTC).strftime("%Y-%m-%d %H:%M:%S")
                owner = f"the MLflow user '{held.user}'" if held.user else "the user who made it"
                raise LockError(
                    f"the apply lock at {redact(self.tracking_uri)} is held by {held.describe()}, whose "
                    f"lease ran out at {since} UTC (that apply was killed or lost the registry); "
                    f"{self.user} may not delete it: deleting the registered model "
                    f"{LOCK_MODEL} needs MANAGE on it (403); nothing was applied",
                    f"{owner} or an MLflow admin may delete the registered model {LOCK_MODEL} "
                    f"(or grant MANAGE on it); then run apply again",
                ) from None
            raise self._lock_error(exc, "delete") from exc

    def release_lock(self, lease_s: float) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.calls += 1
            self.tracking_registry.delete_registered_model(LOCK_MODEL)
        except MlflowException as exc:
            if not_found(exc):
                return  # already gone (broken by another apply after a lost lease)
            raise LockError(
                f"the apply ended but could not delete its apply lock, {self.lock_where} "
                f"({first_line(exc)[:200]})",
                f"its lease runs out {lease_s:.0f} s after the apply ended; then an apply "
                f"by the same MLflow user or an admin breaks it (or delete it by hand)",
            ) from exc

    def hidden_lock(self, waited: str) -> LockError:
        return LockError(
            f"the apply lock ({self.lock_where}) stayed taken for {waited}, and {self.user} may "
            f"not read it (403: reading a registered model needs READ), so who holds it and "
            f"whether its lease ran out are unknown; nothing was applied",
            f"ask an MLflow admin to grant READ on {LOCK_MODEL} (or default_permission = "
            f"READ); if no apply is running, its maker or an admin may delete it",
        )

    def _lock_error(self, exc: Exception, verb: str) -> RegistryError:
        if denied(exc):
            need = {"create": "the right to create registered models", "read": "READ"}.get(
                verb, "MANAGE"
            )
            return LockError(
                f"{self.user} may not {verb} the apply lock, the registered model "
                f"{LOCK_MODEL} at {redact(self.tracking_uri)} (403: it needs {need}); nothing was applied",
                f"ask an MLflow admin for {need}"
                + (f" on {LOCK_MODEL}" if verb != "create" else "")
                + ", or apply as a user who has it",
            )
        return self._translate(exc, f"{verb} the apply lock at", at=self.tracking_uri)
