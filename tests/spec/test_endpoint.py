"""Where a registry is: its tracking URI and its registry URI (apart when the models live
elsewhere, as in Unity Catalog), their precedence and MLflow's defaults, and each registry's own
credentials, a Databricks workspace's host and token included, never another's."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mlflow_gitops.credentials import Credentials
from mlflow_gitops.errors import SpecError
from mlflow_gitops.secrets import redact
from mlflow_gitops.settings import Endpoint, default_registry_uri, registry_identity
from mlflow_gitops.spec.connection import resolve_connection
from mlflow_gitops.spec.tree import load_tree, resolve_registry

TWO_WORKSPACES = """
version: 1
registries:
  dev:
    tracking_uri: http://mlflow-dev.internal:5000
    username_env: DEV_USER
    password_env: DEV_PASSWORD
  prod:
    tracking_uri: databricks://prod
    registry_uri: databricks-uc://prod
    host_env: PROD_DATABRICKS_HOST
    token_env: PROD_DATABRICKS_TOKEN
    audit_experiment: /Shared/ml/mlflow-gitops-audit
  staging:
    tracking_uri: databricks
    host_env: STAGING_DATABRICKS_HOST
    token_env: STAGING_DATABRICKS_TOKEN
  split:
    tracking_uri: http://runs.internal:5000
    registry_uri_env: SPLIT_REGISTRY_URI
default_registry: dev
models: {}
"""

ENVIRON = {
    "DEV_USER": "alice",
    "DEV_PASSWORD": "dev-password",
    "PROD_DATABRICKS_HOST": "https://prod.cloud.databricks.com",
    "PROD_DATABRICKS_TOKEN": "dapi-prod-token",
    "STAGING_DATABRICKS_HOST": "https://staging.cloud.databricks.com",
    "STAGING_DATABRICKS_TOKEN": "dapi-staging-token",
    "SPLIT_REGISTRY_URI": "http://models.internal:5000",
    # the process's own: never any named registry's
    "MLFLOW_REGISTRY_URI": "http://global-registry:1",
    "DATABRICKS_HOST": "https://global.cloud.databricks.com",
    "DATABRICKS_TOKEN": "dapi-global-token",
}


def write(folder: Path, text: str) -> Path:
    path = folder / "registry.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("tracking", "registry"),
    [
        ("databricks", "databricks-uc"),
        ("databricks://prod", "databricks-uc://prod"),
        ("databricks://scope:prefix", "databricks-uc://scope:prefix"),
        ("http://mlflow:5000", "http://mlflow:5000"),
        ("sqlite:////data/mlflow.db", "sqlite:////data/mlflow.db"),
        ("databricks-uc://prod", "databricks-uc://prod"),
        ("arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/prod", None),
    ],
)
def test_the_default_registry_uri_is_mlflows(tracking: str, registry: str | None) -> None:
    assert default_registry_uri(tracking) == (registry or tracking)
    assert Endpoint(tracking).registry_uri == (registry or tracking)


def test_the_default_registry_uri_matches_mlflows_own() -> None:
    from mlflow.tracking._model_registry.utils import (
        _get_default_registry_uri_for_tracking_uri as mlflows,
    )

    for tracking in ("databricks", "databricks://prod", "databricks://scope:prefix", "http://h:1"):
        assert default_registry_uri(tracking) == mlflows(tracking)


def test_a_databricks_uri_is_its_own_identity_and_unity_catalog_is_told_apart() -> None:
    assert registry_identity("databricks-uc") == "databricks-uc"
    assert registry_identity("databricks") == "databricks"
    assert registry_identity("databricks-uc://prod") == "databricks-uc://prod"
    assert Endpoint("databricks://prod").unity_catalog
    assert Endpoint("databricks").identity == "databricks-uc"
    assert not Endpoint("databricks://prod", "databricks://prod").unity_catalog
    assert not Endpoint("http://h:5000").unity_catalog


def test_each_named_registry_has_its_own_uris_and_credentials(tmp_path: Path) -> None:
    tree = load_tree(write(tmp_path, TWO_WORKSPACES))
    dev = resolve_registry(tree, "dev", ENVIRON).endpoint
    prod = resolve_registry(tree, "prod", ENVIRON).endpoint
    staging = resolve_registry(tree, "staging", ENVIRON).endpoint
    split = resolve_registry(tree, "split", ENVIRON).endpoint

    # MLFLOW_REGISTRY_URI belongs to no named registry: each registry URI is its own or MLflow's
    # default for its tracking URI
    assert (dev.tracking_uri, dev.registry_uri) == (
        "http://mlflow-dev.internal:5000",
        "http://mlflow-dev.internal:5000",
    )
    assert (prod.tracking_uri, prod.registry_uri) == ("databricks://prod", "databricks-uc://prod")
    assert (staging.tracking_uri, staging.registry_uri) == ("databricks", "databricks-uc")
    assert (split.tracking_uri, split.registry_uri) == (
        "http://runs.internal:5000",
        "http://models.internal:5000",
    )
    # a Databricks registry's host and token are its own variables', never DATABRICKS_HOST/TOKEN
    assert prod.credentials == Credentials(
        token="dapi-prod-token", host="https://prod.cloud.databricks.com"
    )
    assert staging.credentials == Credentials(
        token="dapi-staging-token", host="https://staging.cloud.databricks.com"
    )
    assert dev.credentials == Credentials(username="alice", password="dev-password")
    assert split.credentials == Credentials()
    assert prod.audit_experiment == "/Shared/ml/mlflow-gitops-audit"
    assert dev.audit_experiment is None  # the backend's default
    # what their file transfers see: exactly their own variables, the others unset
    assert prod.credentials is not None
    assert prod.credentials.variables() == {
        "MLFLOW_TRACKING_USERNAME": None,
        "MLFLOW_TRACKING_PASSWORD": None,
        "MLFLOW_TRACKING_TOKEN": None,
        "DATABRICKS_HOST": "https://prod.cloud.databricks.com",
        "DATABRICKS_TOKEN": "dapi-prod-token",
    }
    assert dev.credentials is not None
    assert dev.credentials.variables()["DATABRICKS_HOST"] is None
    for endpoint in (prod, staging, dev):
        assert "token" not in repr(endpoint)
        assert "password" not in repr(endpoint)


def test_a_named_registrys_token_is_masked_once_resolved(tmp_path: Path) -> None:
    tree = load_tree(write(tmp_path, TWO_WORKSPACES))
    environ = {**ENVIRON, "PROD_DATABRICKS_TOKEN": "dapi-0123456789abcdef"}
    resolve_connection(tree, "prod", None, environ=environ)
    assert redact("sent dapi-0123456789abcdef to prod") == "sent *** to prod"


def test_a_missing_host_or_registry_uri_variable_is_located(tmp_path: Path) -> None:
    root = write(tmp_path, TWO_WORKSPACES)
    tree = load_tree(root)
    with pytest.raises(SpecError) as err:
        resolve_registry(tree, "prod", {"PROD_DATABRICKS_TOKEN": "dapi-x"})
    assert (
        f"{root}:11:5: registries.prod.host_env: registry 'prod' has no host: the variable "
        "PROD_DATABRICKS_HOST is not set"
    ) in err.value.render()
    with pytest.raises(SpecError) as err:
        resolve_registry(tree, "split", {})
    assert (
        f"{root}:20:5: registries.split.registry_uri_env: registry 'split' has no registry URI: "
        "the variable SPLIT_REGISTRY_URI is not set"
    ) in err.value.render()


def test_without_registries_the_registry_uri_follows_mlflows_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    plain = load_tree(write(tmp_path, "version: 1\ntracking_uri: http://runs:5000\n"))
    assert resolve_connection(plain, "default", None) == Endpoint("http://runs:5000")
    # the file's registry_uri (a relative sqlite path from the file's folder) ...
    own = load_tree(
        write(
            tmp_path, "version: 1\ntracking_uri: http://runs:5000\nregistry_uri: sqlite:///m.db\n"
        )
    )
    where = resolve_connection(own, "default", None)
    assert (where.tracking_uri, where.registry_uri) == (
        "http://runs:5000",
        f"sqlite:///{tmp_path.resolve()}/m.db",
    )
    assert where.credentials is None  # MLflow's own variables
    # ... under MLFLOW_REGISTRY_URI, as MLflow takes it
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://models:5000")
    where = resolve_connection(own, "default", None)
    assert (where.tracking_uri, where.registry_uri) == ("http://runs:5000", "http://models:5000")
    # --tracking-uri moves the tracking URI only (the file's registry_uri stays), and a
    # MLFLOW_REGISTRY_URI left in the shell does not send the flagged server's models elsewhere
    where = resolve_connection(own, "default", "http://other-runs:5000")
    assert (where.tracking_uri, where.registry_uri) == (
        "http://other-runs:5000",
        f"sqlite:///{tmp_path.resolve()}/m.db",
    )
    where = resolve_connection(plain, "default", "http://other-runs:5000")
    assert where.registry_uri == "http://other-runs:5000"
    # a Databricks workspace registers into Unity Catalog unless told otherwise
    monkeypatch.delenv("MLFLOW_REGISTRY_URI")
    workspace = load_tree(
        write(tmp_path, "version: 1\ntracking_uri: databricks://prod\naudit_experiment: /x/audit\n")
    )
    where = resolve_connection(workspace, "default", None)
    assert (where.registry_uri, where.audit_experiment) == ("databricks-uc://prod", "/x/audit")


def test_a_registry_found_in_unity_catalog_at_plan_time_is_held_to_its_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write(
        tmp_path,
        """
        version: 1
        registries:
          prod:
            tracking_uri_env: PROD_TRACKING_URI
        models:
          nyc-taxi-regressor:
            versions:
              - version: 1
                stage: Production
        """,
    )
    tree = load_tree(root)  # valid offline: where prod is is known only from its variable
    assert resolve_connection(tree, "prod", None, environ={"PROD_TRACKING_URI": "http://h:1"})
    with pytest.raises(SpecError) as err:
        resolve_connection(tree, "prod", None, environ={"PROD_TRACKING_URI": "databricks://p"})
    rendered = err.value.render()
    assert f"{root}:7:3: models.nyc-taxi-regressor: 'nyc-taxi-regressor' is not" in rendered
    assert f"{root}:10:9: models.nyc-taxi-regressor.versions[0].stage: stage: " in rendered


def test_host_env_is_for_databricks_and_goes_with_a_token(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        """
        version: 1
        registries:
          dev:
            tracking_uri: http://mlflow-dev:5000
            host_env: DEV_HOST
            token_env: DEV_TOKEN
        models: {}
        """,
    )
    with pytest.raises(SpecError) as err:
        load_tree(root)
    assert f"{root}:6:5: registries.dev.host_env: registry 'dev' names host_env:" in (
        err.value.render()
    )
    alone = write(
        tmp_path,
        "version: 1\nregistries:\n  p:\n    tracking_uri: databricks\n    host_env: H\n",
    )
    with pytest.raises(SpecError, match=r"host_env: .* goes with token_env"):
        load_tree(alone)
