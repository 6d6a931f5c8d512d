"""A fake of a Databricks workspace as MLflow's own `databricks://` and `databricks-uc://` clients
call it: Unity Catalog's model registry routes (`/api/2.0/mlflow/unity-catalog/...`, the ones
`mlflow.protos.databricks_uc_registry_service_pb2` lists) answered from memory with UC's
documented behaviour, and every other MLflow route proxied to a real `mlflow server`, which plays
the workspace's tracking API.

It is a fake of the API, not Databricks: it was checked against the MLflow versions in
`MLFLOW_VERSIONS_CHECKED` (their unmodified client), never against a workspace. What it models:

- three-level names `catalog.schema.model`, lower-cased as UC stores them; others are refused
  with INVALID_PARAMETER_VALUE ("specify all three levels", the text MLflow's client looks for);
- no stages (the client refuses a transition itself; the fake has no stage route);
- model search takes no filter; version search exactly one condition, `name='...'` or
  `run_id='...'`;
- versions are PENDING_REGISTRATION until `finalize`, then READY; write credentials are handed out
  only while a version is pending; the temporary credentials are `aws_temp_credentials` for the
  S3-compatible server the tests start (the client reaches it through MLFLOW_S3_ENDPOINT_URL);
- every request carries a bearer token mapped to a user; a model's owner is its creator; aliases
  need ownership or MANAGE, tags ownership, MANAGE or APPLY TAG, other writes to a model
  ownership or MANAGE (`grant` gives a user a privilege on one model or on all);
- errors in Databricks' JSON shape, `{"error_code": ..., "message": ...}`, with Databricks' HTTP
  statuses (400, 401, 403, 404, 409).

Every request is recorded (`requests`): workspace, method, path, the user its token maps to, and
the sorted keys of its JSON body (GET: of its query), so a test can compare what MLflow's client
sent with a recorded expectation."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

# the MLflow releases whose unmodified client was run against this fake (tests/uc/test_contract.py)
MLFLOW_VERSIONS_CHECKED = ("3.17.2",)

UC_PREFIX = "/api/2.0/mlflow/unity-catalog/"
SCIM_ME = "/api/2.0/preview/scim/v2/Me"
# asked, unauthenticated, by the Databricks SDK each time MLflow builds a client (host discovery)
HOST_METADATA = "/.well-known/databricks-config"

# Databricks' HTTP status per error code (docs.databricks.com, "API error codes")
STATUS = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "RESOURCE_ALREADY_EXISTS": 409,
    "INTERNAL_ERROR": 500,
}

# UC's privileges the fake knows (a grant names one of them)
MANAGE, APPLY_TAG = "MANAGE", "APPLY TAG"

_FILTER = re.compile(r"""^\s*(name|run_id)\s*=\s*(['"])([^'"]*)\2\s*$""")
_PART = re.compile(r"^[^.\s/]+$")


class UcError(Exception):
    """An error answered in Databricks' shape."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 400)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Version:
    name: str
    version: int
    source: str
    run_id: str
    description: str
    user_id: str
    storage_location: str
    creation_timestamp: int = field(default_factory=_now_ms)
    last_updated_timestamp: int = field(default_factory=_now_ms)
    status: str = "PENDING_REGISTRATION"
    tags: dict[str, str] = field(default_factory=dict)
    model_id: str = ""
    run_tracking_server_id: str = ""


@dataclass
class Model:
    name: str
    owner: str
    storage_root: str
    description: str = ""
    creation_timestamp: int = field(default_factory=_now_ms)
    last_updated_timestamp: int = field(default_factory=_now_ms)
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    versions: dict[int, Version] = field(default_factory=dict)
    next_version: int = 1


@dataclass(frozen=True)
class StorageCredentials:
    """What `generate-temporary-credentials` hands out: keys of the S3-compatible server, under
    which the versions' files live at `s3://<bucket>/<prefix>...`. UC hands out STS session
    credentials; the tests' S3 server refuses a session token it did not issue, so by default
    the fake hands out an IAM user's keys with an empty session token."""

    bucket: str
    access_key_id: str
    secret_access_key: str
    session_token: str = ""
    prefix: str = "uc"


class Metastore:
    """UC's state: models, versions, aliases, tags and grants, in memory. Two workspaces may
    share one (two fakes given the same Metastore), as two Databricks workspaces attached to one
    metastore do."""

    def __init__(self, storage: StorageCredentials) -> None:
        self.storage = storage
        self.lock = threading.RLock()
        self.models: dict[str, Model] = {}
        self.grants: dict[str, set[tuple[str, str]]] = {}
        self.metastore_id = uuid.uuid4().hex

    # ---- helpers for tests --------------------------------------------------------------

    def grant(self, user: str, privilege: str, name: str = "*") -> None:
        """Give `user` `privilege` (MANAGE or APPLY TAG) on model `name` (`*`: every model)."""
        with self.lock:
            self.grants.setdefault(user, set()).add((privilege, name.lower()))

    def seed(
        self,
        names: Iterable[str],
        *,
        owner: str,
        versions: int = 2,
        aliases: Mapping[str, int] | None = None,
        tags: Mapping[str, str] | None = None,
        source: str = "s3://seeded/model",
    ) -> list[str]:
        """Models straight into memory (READY versions with no files; for benchmarks and plan
        tests): each gets `versions` versions, `aliases` (alias -> version) and `tags`."""
        out = []
        with self.lock:
            for raw in names:
                name = _three_level(raw)
                if name in self.models:
                    raise UcError("RESOURCE_ALREADY_EXISTS", f"Registered model '{name}' exists")
                model = self._new_model(name, owner)
                model.tags.update(tags or {})
                for _ in range(versions):
                    mv = self._new_version(model, source=source, run_id="", user=owner)
                    mv.status = "READY"
                for alias, version in (aliases or {}).items():
                    if version not in model.versions:
                        raise ValueError(f"seed {name}: alias {alias} -> missing v{version}")
                    model.aliases[alias] = version
                out.append(name)
        return out

    def model(self, name: str) -> Model:
        """The model `name` as the fake holds it (KeyError when it does not exist)."""
        with self.lock:
            return self.models[name.lower()]

    # ---- state changes ------------------------------------------------------------------

    def _new_model(self, name: str, owner: str) -> Model:
        model_id = uuid.uuid4().hex
        root = f"s3://{self.storage.bucket}/{self.storage.prefix}/{self.metastore_id}/models/{model_id}"
        model = Model(name=name, owner=owner, storage_root=root)
        self.models[name] = model
        return model

    def _new_version(self, model: Model, *, source: str, run_id: str, user: str) -> Version:
        number = model.next_version
        model.next_version += 1
        mv = Version(
            name=model.name,
            version=number,
            source=source,
            run_id=run_id,
            description="",
            user_id=user,
            storage_location=f"{model.storage_root}/versions/{uuid.uuid4().hex}",
        )
        model.versions[number] = mv
        model.last_updated_timestamp = _now_ms()
        return mv

    def _get(self, name: Any) -> Model:
        key = _three_level(name)
        model = self.models.get(key)
        if model is None:
            raise UcError("RESOURCE_DOES_NOT_EXIST", f"Registered model '{key}' does not exist.")
        return model

    def _version(self, model: Model, version: Any) -> Version:
        try:
            mv = model.versions.get(int(str(version)))
        except ValueError:
            mv = None
        if mv is None:
            raise UcError(
                "RESOURCE_DOES_NOT_EXIST",
                f"Model version {model.name}/{version} does not exist.",
            )
        return mv

    def _allowed(self, user: str, model: Model, privileges: tuple[str, ...]) -> bool:
        if user == model.owner:
            return True
        held = self.grants.get(user, set())
        return any((p, n) in held for p in privileges for n in (model.name, "*"))

    def _require(self, user: str, model: Model, privileges: tuple[str, ...], what: str) -> None:
        if not self._allowed(user, model, privileges):
            needed = " or ".join(privileges)
            raise UcError(
                "PERMISSION_DENIED",
                f"User '{user}' does not have {needed} on Registered Model '{model.name}'. "
                f"To {what}, the user must be the owner of the registered model or hold "
                f"{needed} on it.",
            )

    # ---- JSON views ---------------------------------------------------------------------

    @staticmethod
    def _model_json(model: Model, *, search: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": model.name,
            "creation_timestamp": model.creation_timestamp,
            "last_updated_timestamp": model.last_updated_timestamp,
            "user_id": model.owner,
        }
        if model.description:
            out["description"] = model.description
        if not search:  # UC's search answers carry neither (MLflow's client drops them too)
            out["aliases"] = [{"alias": a, "version": str(v)} for a, v in model.aliases.items()]
            out["tags"] = [{"key": k, "value": v} for k, v in model.tags.items()]
        return out

    @staticmethod
    def _version_json(model: Model, mv: Version, *, search: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": mv.name,
            "version": str(mv.version),
            "creation_timestamp": mv.creation_timestamp,
            "last_updated_timestamp": mv.last_updated_timestamp,
            "user_id": mv.user_id,
            "source": mv.source,
            "status": mv.status,
            "storage_location": mv.storage_location,
        }
        for key in ("description", "run_id", "model_id", "run_tracking_server_id"):
            if getattr(mv, key):
                out[key] = getattr(mv, key)
        if not search:
            out["aliases"] = [
                {"alias": a, "version": str(v)} for a, v in model.aliases.items() if v == mv.version
            ]
            out["tags"] = [{"key": k, "value": v} for k, v in mv.tags.items()]
        return out

    # ---- routes -------------------------------------------------------------------------

    def handle(self, method: str, route: str, body: dict[str, Any], user: str) -> dict[str, Any]:
        """Answer one UC route (`route`: the path after the UC prefix) for `user`."""
        handler = _ROUTES.get((method, route))
        if handler is None:
            raise UcError("ENDPOINT_NOT_FOUND", f"No API found for '{method} {UC_PREFIX}{route}'")
        with self.lock:
            return handler(self, body, user)

    def create_registered_model(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        name = _three_level(body.get("name"))
        if name in self.models:
            raise UcError("RESOURCE_ALREADY_EXISTS", f"Registered model '{name}' already exists.")
        model = self._new_model(name, user)
        model.description = body.get("description") or ""
        model.tags.update({t["key"]: t.get("value", "") for t in body.get("tags") or []})
        return {"registered_model": self._model_json(model)}

    def get_registered_model(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        return {"registered_model": self._model_json(self._get(body.get("name")))}

    def update_registered_model(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        self._require(user, model, (MANAGE,), "update a registered model")
        if "new_name" in body:
            new = _three_level(body["new_name"])
            if new in self.models:
                raise UcError(
                    "RESOURCE_ALREADY_EXISTS", f"Registered model '{new}' already exists."
                )
            del self.models[model.name]
            model.name = new
            for mv in model.versions.values():
                mv.name = new
            self.models[new] = model
        if "description" in body:
            model.description = body["description"] or ""
        model.last_updated_timestamp = _now_ms()
        return {"registered_model": self._model_json(model)}

    def delete_registered_model(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        self._require(user, model, (MANAGE,), "delete a registered model")
        del self.models[model.name]
        return {}

    def search_registered_models(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        if body.get("filter"):
            raise UcError(
                "INVALID_PARAMETER_VALUE",
                "Searching registered models in Unity Catalog does not support a filter.",
            )
        models = sorted(self.models.values(), key=lambda m: m.name)
        page, token = _page(models, body)
        out: dict[str, Any] = {
            "registered_models": [self._model_json(m, search=True) for m in page]
        }
        if token:
            out["next_page_token"] = token
        return out

    def create_model_version(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        self._require(user, model, (MANAGE,), "create a model version")
        if not body.get("source"):
            raise UcError("INVALID_PARAMETER_VALUE", "Missing value for required field: source")
        mv = self._new_version(
            model, source=body["source"], run_id=body.get("run_id") or "", user=user
        )
        mv.description = body.get("description") or ""
        mv.model_id = body.get("model_id") or ""
        mv.run_tracking_server_id = body.get("run_tracking_server_id") or ""
        mv.tags.update({t["key"]: t.get("value", "") for t in body.get("tags") or []})
        return {"model_version": self._version_json(model, mv)}

    def finalize_model_version(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        mv = self._version(model, body.get("version"))
        if mv.status != "PENDING_REGISTRATION":
            raise UcError(
                "INVALID_PARAMETER_VALUE",
                f"Model version {model.name}/{mv.version} is {mv.status}, not "
                "PENDING_REGISTRATION: only a pending model version can be finalized.",
            )
        mv.status = "READY"
        mv.last_updated_timestamp = _now_ms()
        return {"model_version": self._version_json(model, mv)}

    def get_model_version(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        return {
            "model_version": self._version_json(model, self._version(model, body.get("version")))
        }

    def update_model_version(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        mv = self._version(model, body.get("version"))
        self._require(user, model, (MANAGE,), "update a model version")
        if "description" in body:
            mv.description = body["description"] or ""
        mv.last_updated_timestamp = _now_ms()
        return {"model_version": self._version_json(model, mv)}

    def delete_model_version(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        mv = self._version(model, body.get("version"))
        self._require(user, model, (MANAGE,), "delete a model version")
        del model.versions[mv.version]
        model.aliases = {a: v for a, v in model.aliases.items() if v != mv.version}
        return {}

    def search_model_versions(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        text = body.get("filter") or ""
        match = _FILTER.match(text)
        if match is None:
            raise UcError(
                "INVALID_PARAMETER_VALUE",
                f"Unsupported filter '{text}': searching model versions in Unity Catalog takes "
                "exactly one condition, name='<catalog>.<schema>.<model>' or run_id='<run id>'.",
            )
        key, value = match.group(1), match.group(3)
        if key == "name":
            model = self.models.get(value.lower())
            found = [(model, mv) for mv in model.versions.values()] if model else []
        else:
            found = [
                (m, mv) for m in self.models.values() for mv in m.versions.values()
                if mv.run_id == value
            ]  # fmt: skip
        found.sort(key=lambda pair: (pair[0].name, -pair[1].version))
        page, token = _page(found, body)
        out: dict[str, Any] = {
            "model_versions": [self._version_json(m, mv, search=True) for m, mv in page]
        }
        if token:
            out["next_page_token"] = token
        return out

    def get_model_version_download_uri(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        return {"artifact_uri": self._version(model, body.get("version")).storage_location}

    def generate_temporary_credentials(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        mv = self._version(model, body.get("version"))
        operation = body.get("operation") or ""
        if operation == "MODEL_VERSION_OPERATION_READ_WRITE":
            self._require(user, model, (MANAGE,), "write a model version's files")
            if mv.status != "PENDING_REGISTRATION":
                raise UcError(
                    "INVALID_PARAMETER_VALUE",
                    f"Model version {model.name}/{mv.version} is {mv.status}: its files can "
                    "only be written while it is PENDING_REGISTRATION.",
                )
        elif operation != "MODEL_VERSION_OPERATION_READ":
            raise UcError("INVALID_PARAMETER_VALUE", f"Unsupported operation '{operation}'.")
        s = self.storage
        return {
            "credentials": {
                "aws_temp_credentials": {
                    "access_key_id": s.access_key_id,
                    "secret_access_key": s.secret_access_key,
                    "session_token": s.session_token,
                },
                "expiration_time": _now_ms() + 3600_000,
                "storage_mode": "CUSTOMER_HOSTED",
            }
        }

    def set_alias(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        alias = _alias(body.get("alias"))
        mv = self._version(model, body.get("version"))
        self._require(user, model, (MANAGE,), "set an alias")
        model.aliases[alias] = mv.version
        return {}

    def delete_alias(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        alias = _alias(body.get("alias"))
        self._require(user, model, (MANAGE,), "delete an alias")
        if alias not in model.aliases:
            raise UcError(
                "RESOURCE_DOES_NOT_EXIST",
                f"Alias '{alias}' does not exist on Registered Model '{model.name}'.",
            )
        del model.aliases[alias]
        return {}

    def get_by_alias(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        alias = _alias(body.get("alias"))
        if alias not in model.aliases:
            raise UcError(
                "RESOURCE_DOES_NOT_EXIST",
                f"Alias '{alias}' does not exist on Registered Model '{model.name}'.",
            )
        mv = model.versions[model.aliases[alias]]
        return {"model_version": self._version_json(model, mv)}

    def set_model_tag(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        self._require(user, model, (MANAGE, APPLY_TAG), "set a tag")
        model.tags[_tag_key(body.get("key"))] = str(body.get("value") or "")
        return {}

    def delete_model_tag(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        self._require(user, model, (MANAGE, APPLY_TAG), "delete a tag")
        model.tags.pop(_tag_key(body.get("key")), None)
        return {}

    def set_version_tag(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        mv = self._version(model, body.get("version"))
        self._require(user, model, (MANAGE, APPLY_TAG), "set a tag")
        mv.tags[_tag_key(body.get("key"))] = str(body.get("value") or "")
        return {}

    def delete_version_tag(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        model = self._get(body.get("name"))
        mv = self._version(model, body.get("version"))
        self._require(user, model, (MANAGE, APPLY_TAG), "delete a tag")
        mv.tags.pop(_tag_key(body.get("key")), None)
        return {}

    def sdk_repo_enabled(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        # the client asks before a download; "no" keeps it on the temporary-credentials path
        return {"is_databricks_sdk_models_artifact_repository_enabled": False}


_ROUTES = {
    ("POST", "registered-models/create"): Metastore.create_registered_model,
    ("GET", "registered-models/get"): Metastore.get_registered_model,
    ("PATCH", "registered-models/update"): Metastore.update_registered_model,
    ("DELETE", "registered-models/delete"): Metastore.delete_registered_model,
    ("GET", "registered-models/search"): Metastore.search_registered_models,
    ("POST", "model-versions/create"): Metastore.create_model_version,
    ("POST", "model-versions/finalize"): Metastore.finalize_model_version,
    ("GET", "model-versions/get"): Metastore.get_model_version,
    ("PATCH", "model-versions/update"): Metastore.update_model_version,
    ("DELETE", "model-versions/delete"): Metastore.delete_model_version,
    ("GET", "model-versions/search"): Metastore.search_model_versions,
    ("GET", "model-versions/get-download-uri"): Metastore.get_model_version_download_uri,
    ("POST", "model-versions/generate-temporary-credentials"): (
        Metastore.generate_temporary_credentials
    ),
    ("POST", "registered-models/alias"): Metastore.set_alias,
    ("DELETE", "registered-models/alias"): Metastore.delete_alias,
    ("GET", "registered-models/alias"): Metastore.get_by_alias,
    ("POST", "registered-models/set-tag"): Metastore.set_model_tag,
    ("DELETE", "registered-models/delete-tag"): Metastore.delete_model_tag,
    ("POST", "model-versions/set-tag"): Metastore.set_version_tag,
    ("DELETE", "model-versions/delete-tag"): Metastore.delete_version_tag,
    ("GET", "registered-models:is-databricks-sdk-models-artifact-repository-enabled"): (
        Metastore.sdk_repo_enabled
    ),
}


def _three_level(name: Any) -> str:
    text = name if isinstance(name, str) else ""
    parts = text.split(".")
    if len(parts) != 3 or not all(_PART.match(p) for p in parts):
        raise UcError(
            "INVALID_PARAMETER_VALUE",
            f"Invalid registered model name '{text}': please specify all three levels of the "
            "name, <catalog>.<schema>.<model>.",
        )
    return text.lower()


def _alias(alias: Any) -> str:
    if not isinstance(alias, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", alias):
        raise UcError("INVALID_PARAMETER_VALUE", f"Invalid alias name '{alias}'.")
    return alias.lower()


def _tag_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise UcError("INVALID_PARAMETER_VALUE", "Missing value for required field: key")
    return key


def _page(items: list[Any], body: dict[str, Any]) -> tuple[list[Any], str]:
    """One page of `items` (UC caps a page at 1000) and the token of the next ('' at the end)."""
    try:
        size = min(int(body.get("max_results") or 100), 1000)
        start = int(body.get("page_token") or 0)
    except ValueError as e:
        raise UcError("INVALID_PARAMETER_VALUE", f"Invalid page token or max_results: {e}") from e
    end = start + size
    return items[start:end], (str(end) if end < len(items) else "")


@dataclass
class Request:
    """One request the fake answered: which workspace, who (the user its token maps to), what
    (method, path, the sorted keys of its JSON body or query) and the status answered."""

    workspace: str
    method: str
    path: str
    user: str | None
    keys: tuple[str, ...]
    status: int = 0
    token: str | None = field(default=None, repr=False)
    body: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_uc(self) -> bool:
        return self.path.startswith(UC_PREFIX)

    def signature(self) -> list[Any]:
        """What a contract compares: method, path, body/query keys."""
        return [self.method, self.path, list(self.keys)]


class FakeWorkspace:
    """One Databricks workspace on 127.0.0.1 (a free port unless `port` is given): UC routes from
    `metastore`, other MLflow routes proxied to `tracking_url` (a real `mlflow server`), the SCIM
    `Me` route answered with the token's user. `tokens` maps bearer tokens to users; a request
    without a known token gets 401. `latency_s` is slept before answering each request (as a
    cloud API's round trip). `workspace_paths`: experiment names must be absolute workspace paths
    (`/Shared/...`, `/Users/<user>/...`) as Databricks requires.

    A context manager; `start()`/`stop()` otherwise."""

    def __init__(
        self,
        metastore: Metastore,
        tokens: Mapping[str, str],
        *,
        tracking_url: str | None = None,
        name: str = "workspace",
        workspace_id: str | None = None,
        latency_s: float = 0.0,
        workspace_paths: bool = True,
        port: int = 0,
    ) -> None:
        self.metastore = metastore
        self.tokens = dict(tokens)
        self.tracking_url = tracking_url
        self.name = name
        self.workspace_id = workspace_id or str(abs(hash((name, uuid.uuid4().hex))) % 10**15)
        self.latency_s = latency_s
        self.workspace_paths = workspace_paths
        self.requests: list[Request] = []
        self._requests_lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _handler_for(self))
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name=f"fake-uc-{self.name}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, request: Request) -> None:
        with self._requests_lock:
            self.requests.append(request)

    def mark(self) -> int:
        """The number of requests recorded so far (pass it to `since`)."""
        with self._requests_lock:
            return len(self.requests)

    def since(self, mark: int = 0, *, uc_only: bool = False) -> list[Request]:
        """The requests recorded after `mark` (uc_only: the Unity Catalog routes only)."""
        with self._requests_lock:
            found = self.requests[mark:]
        return [r for r in found if r.is_uc or not uc_only]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # a client reading concurrently opens many connections at once: the default backlog (5)
    # would drop some, and the kernel would retry them a second later
    request_queue_size = 256


def _handler_for(ws: FakeWorkspace) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the client's session reuses connections

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the fake records requests itself

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def _serve(self, method: str) -> None:
            if ws.latency_s:
                time.sleep(ws.latency_s)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parsed = urllib.parse.urlsplit(self.path)
            path = parsed.path
            auth = self.headers.get("Authorization") or ""
            token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
            user = ws.tokens.get(token or "")
            body: dict[str, Any] = {}
            if method == "GET" or not raw:
                query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
                body = {k: v[0] if len(v) == 1 else v for k, v in query.items()}
            else:
                try:
                    loaded = json.loads(raw)
                    body = loaded if isinstance(loaded, dict) else {}
                except ValueError:
                    body = {}
            record = Request(
                workspace=ws.name, method=method, path=path, user=user,
                keys=tuple(sorted(body)), token=token, body=body,
            )  # fmt: skip
            try:
                if path == HOST_METADATA:
                    self._json(record, 200, _host_metadata(ws))
                    return
                if user is None:
                    raise UcError(
                        "UNAUTHENTICATED",
                        "Invalid access token." if token else "Missing bearer token.",
                    )
                if path.startswith(UC_PREFIX):
                    answer = ws.metastore.handle(method, path[len(UC_PREFIX) :], body, user)
                    self._json(record, 200, answer)
                elif path == SCIM_ME:
                    self._json(record, 200, _scim_me(user))
                elif "/mlflow/" in path and path.startswith("/api/"):
                    self._proxy(record, method, raw, body)
                else:
                    raise UcError("ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
            except UcError as e:
                self._json(record, e.status, {"error_code": e.code, "message": e.message})
            except Exception as e:  # a bug of the fake: answered, so the client fails at once
                message = f"fake UC failed: {type(e).__name__}: {e}"
                self._json(record, 500, {"error_code": "INTERNAL_ERROR", "message": message})

        def _proxy(self, record: Request, method: str, raw: bytes, body: dict[str, Any]) -> None:
            if ws.tracking_url is None:
                raise UcError("ENDPOINT_NOT_FOUND", f"No tracking server behind {ws.name}")
            if (
                ws.workspace_paths
                and record.path.endswith("/experiments/create")
                and not str(body.get("name", "")).startswith("/")
            ):
                raise UcError(
                    "INVALID_PARAMETER_VALUE",
                    f"Got an invalid experiment name '{body.get('name')}'. An experiment name "
                    "must be an absolute path within the Databricks workspace, e.g. "
                    "'/Users/<some-username>/my-experiment'.",
                )
            target = urllib.parse.urlsplit(ws.tracking_url)
            conn = http.client.HTTPConnection(
                target.hostname or "127.0.0.1", target.port, timeout=120
            )
            try:
                headers = {
                    k: v for k, v in self.headers.items()
                    if k.lower() not in {"authorization", "host", "connection", "content-length"}
                }  # fmt: skip
                try:
                    conn.request(method, self.path, body=raw or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except OSError as e:
                    raise UcError(
                        "INTERNAL_ERROR", f"tracking server {ws.tracking_url} unreachable: {e}"
                    ) from e
                record.status = resp.status
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in {"connection", "transfer-encoding", "content-length",
                                         "server", "date"}:  # fmt: skip
                        self.send_header(k, v)
                self.send_header("x-databricks-org-id", ws.workspace_id)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                ws.record(record)
            finally:
                conn.close()

        def _json(self, record: Request, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            record.status = status
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("x-databricks-org-id", ws.workspace_id)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            ws.record(record)

    return Handler


def _host_metadata(ws: FakeWorkspace) -> dict[str, Any]:
    return {"oidc_endpoint": f"{ws.url}/oidc", "workspace_id": ws.workspace_id, "cloud": "aws"}


def _scim_me(user: str) -> dict[str, Any]:
    return {
        "id": str(abs(hash(user)) % 10**15),
        "userName": user,
        "displayName": user.split("@", maxsplit=1)[0],
        "active": True,
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    }
