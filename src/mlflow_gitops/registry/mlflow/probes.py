"""Whether this user may do something, asked of an MLflow server without changing anything:
basic-auth's own answer where the server gives it (MLflow 3), else calls it checks first."""

from __future__ import annotations

from typing import Any

from mlflow_gitops.credentials import Credentials
from mlflow_gitops.errors import RegistryError
from mlflow_gitops.permissions import Permission, holds
from mlflow_gitops.record import PROBE_TAG
from mlflow_gitops.registry.mlflow.base import Connection
from mlflow_gitops.registry.mlflow.env import host_creds, sends_credentials
from mlflow_gitops.registry.mlflow.errors import denied, not_found
from mlflow_gitops.settings import Endpoint

USER_PERMISSION = "/api/3.0/mlflow/users/permissions/get"
MODEL_PERMISSIONS = "/api/2.0/mlflow/registered-models/permissions/get"


class Probes(Connection):
    """`can` and `can_record`, with each model's answered level remembered."""

    def __init__(self, where: str | Endpoint, credentials: Credentials | None = None) -> None:
        super().__init__(where, credentials)
        self._levels: dict[str, str] = {}  # model -> this user's MLflow permission, when told

    def can(self, name: str, permission: Permission) -> bool:
        """Whether this user holds `permission` on the registered model, asked in ways that
        change nothing. A server whose basic-auth answers a user's own permission (MLflow 3:
        /api/3.0/mlflow/users/permissions/get) is asked that; otherwise calls that basic-auth
        checks before the store runs them: READ gets the model, EDIT deletes a model tag no one
        sets (a no-op in MLflow's stores, and no webhook), MANAGE reads the model's permission
        list (MLflow 2.x: MANAGE only). True where the registry has no permissions."""
        if not self.uri.startswith(("http://", "https://")) or not self._sends_credentials():
            return True  # without credentials a server with authentication refuses everything
        user = self._username()
        if user and name not in self._levels:
            answer = self._http(
                "GET",
                USER_PERMISSION,
                {"username": user, "resource_type": "registered_model", "resource_id": name},
            )
            ok = answer[0] == 200 and "permission" in answer[1]
            self._levels[name] = str(answer[1]["permission"]) if ok else ""
        if self._levels.get(name):
            return holds(self._levels[name], permission)
        if permission == "MANAGE":
            if not user:
                return True  # no way to ask without a username: the write itself will say
            answer = self._http("GET", MODEL_PERMISSIONS, {"name": name, "username": user})
            return answer[0] != 403
        from mlflow.exceptions import MlflowException

        try:
            self.calls += 1
            if permission == "READ":
                self.client.get_registered_model(name)
            else:
                self.writer.delete_registered_model_tag(name, PROBE_TAG)
        except MlflowException as exc:
            if denied(exc):
                return False
            if not_found(exc):
                return True  # absent: creating it needs no permission on it
            raise self._translate(exc, f"check permissions on '{name}' at") from exc
        return True

    def can_record(self) -> bool:
        """Whether this user may create runs in the audit experiment (EDIT on it). Asked where
        basic-auth answers a user's own permission (MLflow 3); an experiment that does not exist
        yet is created by this apply, and its creator may write it. The experiment is in the
        tracking server."""
        web = self.tracking_uri.startswith(("http://", "https://"))
        if not web or not sends_credentials(self.tracking_uri, self.credentials):
            return True
        user = self._username()
        if not user:
            return True
        from mlflow.exceptions import MlflowException

        try:
            self.calls += 1
            found = self.client.get_experiment_by_name(self.audit_experiment)
        except MlflowException as exc:
            if denied(exc):
                return False
            raise self._translate(exc, "check permissions on the audit record at") from exc
        if found is None:
            return True
        status, body = self._http(
            "GET",
            USER_PERMISSION,
            {"username": user, "resource_type": "experiment", "resource_id": found.experiment_id},
            at=self.tracking_uri,
        )
        if status == 200 and "permission" in body:
            return holds(str(body["permission"]), "EDIT")
        return True  # an older server: opening the run under the lock will tell

    def _http(
        self, method: str, path: str, params: dict[str, str], at: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """One raw REST call with this registry's credentials to its registry server (`at`:
        another of its servers): (status, JSON object or {}). A 401 is an error."""
        from mlflow.utils.rest_utils import http_request

        try:
            self.calls += 1
            answer = http_request(  # type: ignore[no-untyped-call]
                host_creds(at, self.credentials) if at else self._host_creds(),
                path,
                method,
                params=params,
                max_retries=0,
            )
        except Exception as exc:
            raise self._translate(exc, "check permissions at") from exc
        if answer.status_code == 401:
            raise self._translate(RegistryError("error code 401"), "check permissions at") from None
        try:
            body = answer.json()
        except ValueError:
            body = {}
        return int(answer.status_code), body if isinstance(body, dict) else {}
