"""A real `mlflow server --app-name basic-auth`: an admin and users holding READ, EDIT and MANAGE
on each test's model; one MLflow 3 server with `default_permission = READ` and one with
NO_PERMISSIONS, and an MLflow 2.22 server (default READ) from its own venv (tests/mlflow2.py).

MLflow 3 answers a user's own permission (/api/3.0/mlflow/users/permissions/get); 2.22 does not,
so there the adapter probes (EDIT: deleting a model tag no one sets; MANAGE: reading the model's
permission list): `any_auth_server` runs a test on both."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mlflow_gitops.record import AUDIT_EXPERIMENT
from tests.mlflow2 import mlflow2_bin, mlflow2_python
from tests.servers import MlflowServer

LOCK_MODEL = "mlflow-gitops.apply-lock"
USERS = ("reader", "editor", "manager", "other")
GRANTS = {"reader": "READ", "editor": "EDIT", "manager": "MANAGE"}
GENERATIONS = ("3", "2.22")  # the MLflow of the server: this venv's, or .venv-mlflow2's


@dataclass
class AuthServer:
    """A running basic-auth server, its users' passwords, and helpers to act as one of them."""

    server: MlflowServer
    default_permission: str
    passwords: dict[str, str] = field(default_factory=dict)
    generation: str = "3"

    @property
    def uri(self) -> str:
        return self.server.uri

    def rest(self, user: str, method: str, path: str, body: dict[str, object] | None = None) -> int:
        """One REST call as `user`; returns the HTTP status (raises on none)."""
        token = base64.b64encode(f"{user}:{self.passwords[user]}".encode()).decode()
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.uri}{path}", data=data, method=method,
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def grant(
        self, user: str, resource: str, permission: str, kind: str = "registered_model"
    ) -> None:
        """Grant `permission` on a registered model (its name) or an experiment (its id)."""
        if self.generation == "3":
            status = self.rest(
                "admin", "POST", "/api/3.0/mlflow/users/permissions/grant",
                {"username": user, "resource_type": kind, "resource_id": resource,
                 "permission": permission},
            )  # fmt: skip
        elif kind == "registered_model":  # MLflow 2.x: one endpoint per resource type
            status = self.rest(
                "admin", "POST", "/api/2.0/mlflow/registered-models/permissions/create",
                {"name": resource, "username": user, "permission": permission},
            )  # fmt: skip
        else:
            status = self.rest(
                "admin", "POST", "/api/2.0/mlflow/experiments/permissions/create",
                {"experiment_id": resource, "username": user, "permission": permission},
            )  # fmt: skip
        assert status == 200, f"granting {permission} on {kind} {resource} to {user}: HTTP {status}"

    @contextmanager
    def as_user(self, user: str) -> Iterator[None]:
        """MLFLOW_TRACKING_USERNAME/PASSWORD of that user while the block runs (MLflow reads
        them on every request)."""
        saved = {
            k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
        }
        os.environ["MLFLOW_TRACKING_USERNAME"] = user
        os.environ["MLFLOW_TRACKING_PASSWORD"] = self.passwords[user]
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def client(self):  # type: ignore[no-untyped-def]
        """An MlflowClient; it acts as whoever as_user() names at the time of each call."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def model(self, *, versions: int = 2) -> str:
        """A new model (admin-made) with `versions` versions, v1 in Production, alias champion=1,
        tag team=rides; reader, editor and manager hold READ, EDIT and MANAGE on it."""
        name = f"auth-{uuid.uuid4().hex[:10]}"
        with self.as_user("admin"):
            c = self.client()
            c.create_registered_model(name, tags={"team": "rides"})
            experiment = c.get_experiment_by_name("auth-tests") or c.get_experiment(
                c.create_experiment("auth-tests")
            )
            for _ in range(versions):
                run = c.create_run(experiment.experiment_id)
                c.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id)
            c.transition_model_version_stage(name, "1", "Production")
            c.set_registered_model_alias(name, "champion", "1")
        for user, permission in GRANTS.items():
            self.grant(user, name, permission)
        return name

    def snapshot(self, name: str) -> object:
        """Everything a user could see of the model, as admin: to assert nothing changed."""
        with self.as_user("admin"):
            c = self.client()
            m = c.get_registered_model(name)
            versions = c.search_model_versions(f"name = '{name}'")
            return (
                m.description, dict(m.tags), dict(m.aliases), m.last_updated_timestamp,
                sorted(
                    (v.version, v.current_stage, v.description, dict(v.tags),
                     v.last_updated_timestamp)
                    for v in versions
                ),
            )  # fmt: skip

    def hold_lock(self, user: str, lease_in_s: float) -> dict[str, str]:
        """Make the apply lock as `user` would (its lease ends lease_in_s from now; negative: ran
        out), the way a killed apply leaves it; returns its tags."""
        tags = {
            "mlflow_gitops.lock": uuid.uuid4().hex,
            "mlflow_gitops.holder": f"commit 1a2b3c4, by {user}-in-ci, 2026-12-01 07:00:00",
            "mlflow_gitops.holder_user": user,
            "mlflow_gitops.lease": f"{time.time() + lease_in_s:.0f}",
        }
        status = self.rest(
            user, "POST", "/api/2.0/mlflow/registered-models/create",
            {"name": LOCK_MODEL, "tags": [{"key": k, "value": v} for k, v in tags.items()]},
        )  # fmt: skip
        assert status == 200, f"{user} could not make the lock: HTTP {status}"
        return tags

    def lock_tags(self) -> dict[str, str] | None:
        """The lock's tags as the admin sees them; None when there is no lock."""
        with self.as_user("admin"):
            try:
                return dict(self.client().get_registered_model(LOCK_MODEL).tags)
            except Exception as exc:
                if "RESOURCE_DOES_NOT_EXIST" in str(exc):
                    return None
                raise

    def lock_exists(self) -> bool:
        return (
            self.rest("admin", "GET", f"/api/2.0/mlflow/registered-models/get?name={LOCK_MODEL}")
            == 200
        )

    def drop_lock(self) -> None:
        self.rest(
            "admin", "DELETE", "/api/2.0/mlflow/registered-models/delete", {"name": LOCK_MODEL}
        )


def start_auth_server(root: Path, default_permission: str, generation: str = "3") -> AuthServer:
    """A basic-auth server in `root` with the admin, the USERS and the audit experiment."""
    passwords = {user: secrets.token_urlsafe(12) for user in ("admin", *USERS)}
    config = root / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = sqlite:///{root}/basic_auth.db\n"
        "admin_username = admin\n"
        f"admin_password = {passwords['admin']}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # each request hashes the password (PBKDF2) unless verified credentials are cached
        "auth_cache_ttl_seconds = 600\n",
        encoding="utf-8",
    )
    # the server's workers each migrate a new auth database at boot, and two at once can collide
    # ("Worker failed to boot"): migrate it first, with the server's own MLflow
    python = sys.executable if generation == "3" else mlflow2_python()
    subprocess.run(
        [python, "-c", "import sys; from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore; "
         "SqlAlchemyStore().init_db(sys.argv[1])", f"sqlite:///{root}/basic_auth.db"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    server = MlflowServer(
        f"sqlite:///{root}/mlflow.db", root, app_name="basic-auth",
        mlflow_bin=None if generation == "3" else mlflow2_bin(),
        env={
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            # basic-auth refuses to start without a static key for its CSRF protection
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        },
    )  # fmt: skip
    auth = AuthServer(server, default_permission, passwords, generation)
    for user in USERS:
        status = auth.rest(
            "admin", "POST", "/api/2.0/mlflow/users/create",
            {"username": user, "password": passwords[user]},
        )  # fmt: skip
        if status != 200:
            server.stop()
            raise RuntimeError(f"creating user {user} on the basic-auth server: HTTP {status}")
    # the setup docs/servers.md describes: an admin makes the audit experiment and grants EDIT on it to those who
    # apply (whoever made it first would hold MANAGE, everyone else only default_permission)
    with auth.as_user("admin"):
        audit = auth.client().create_experiment(AUDIT_EXPERIMENT)
    for user in ("editor", "manager"):
        auth.grant(user, audit, "EDIT", kind="experiment")
    return auth
