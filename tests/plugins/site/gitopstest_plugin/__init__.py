"""A tiny MLflow plugin for a made-up scheme, `gitopstest://HOST:PORT`: a tracking store, a
registry store and a request auth provider, found by MLflow's own plugin loading through the
entry points of gitopstest_plugin-0.1.dist-info beside this folder (put the folder on sys.path
or PYTHONPATH). Its stores are MLflow's REST stores against http://HOST:PORT, every request
signed by the auth provider `gitopstest`: an HMAC of the method and the path under SIGNATURE."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlsplit

import requests
from mlflow.store.model_registry.rest_store import RestStore as RegistryRestStore
from mlflow.store.tracking.rest_store import RestStore as TrackingRestStore
from mlflow.tracking.request_auth.abstract_request_auth_provider import RequestAuthProvider
from mlflow.utils.rest_utils import MlflowHostCreds

SCHEME = "gitopstest"
SIGNATURE = "X-Gitopstest-Signature"
KEY = b"gitopstest-signing-key"


def signature(method: str, path: str) -> str:
    """What a signed request carries: an HMAC of its method and path (no query)."""
    return hmac.new(KEY, f"{method.upper()} {path}".encode(), hashlib.sha256).hexdigest()


def _host_creds(store_uri: str) -> Any:
    parts = urlsplit(store_uri)
    return MlflowHostCreds(f"http://{parts.netloc}{parts.path.rstrip('/')}", auth=SCHEME)


def tracking_store(store_uri: str, artifact_uri: str | None = None) -> Any:
    return TrackingRestStore(lambda: _host_creds(store_uri))


def registry_store(store_uri: str, tracking_uri: str | None = None) -> Any:
    return RegistryRestStore(lambda: _host_creds(store_uri))


class _Sign(requests.auth.AuthBase):
    def __call__(self, request: Any) -> Any:
        request.headers[SIGNATURE] = signature(request.method, urlsplit(request.url).path)
        return request


class SigningAuthProvider(RequestAuthProvider):
    def get_name(self) -> str:
        return SCHEME

    def get_auth(self) -> Any:
        return _Sign()
