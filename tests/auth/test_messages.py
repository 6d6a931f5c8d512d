"""403 and 401 say what is wrong and what to do: the operation, the model and the MLflow
permission it needs; which variables hold the credentials. Never the password."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlflow_gitops.errors import PermissionDenied
from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry
from tests.auth.harness import AuthServer
from tests.cli_runner import run_cli
from tests.helpers import write_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Call = Callable[[MlflowRegistry, str], None]
CASES: list[tuple[str, str, Call, str]] = [
    ("reader", "set tag", lambda r, m: r.set_model_tag(m, "team", "x"), "EDIT"),
    ("reader", "transition stage", lambda r, m: r.transition_stage(m, 2, "Staging"), "EDIT"),
    ("reader", "set alias", lambda r, m: r.set_alias(m, "challenger", 2), "EDIT"),
    ("reader", "set description", lambda r, m: r.set_model_description(m, "x"), "EDIT"),
    ("editor", "delete alias", lambda r, m: r.delete_alias(m, "champion"), "MANAGE"),
    ("editor", "delete version", lambda r, m: r.delete_version(m, 2), "MANAGE"),
    (
        "editor",
        "delete version tag",
        lambda r, m: r.delete_version_tag(m, 1, "model_type"),
        "MANAGE",
    ),
]


@pytest.mark.parametrize(
    ("user", "operation", "call", "permission"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_a_403_names_the_operation_the_model_and_the_permission(
    any_auth_server: AuthServer, user: str, operation: str, call: Call, permission: str
) -> None:
    model = any_auth_server.model()
    before = any_auth_server.snapshot(model)
    with any_auth_server.as_user(user):
        registry = MlflowRegistry(any_auth_server.uri)
        with pytest.raises(PermissionDenied) as refused:
            call(registry, model)
    message = refused.value.message
    assert message.startswith(f"403 Permission denied: {operation} needs {permission} on ")
    assert f"registered model '{model}'" in message
    assert f"user '{user}' lacks" in message
    assert f"grant {permission} on '{model}'" in refused.value.hint
    assert "will not help" in refused.value.hint
    assert any_auth_server.passwords[user] not in message + refused.value.hint
    assert any_auth_server.snapshot(model) == before


@pytest.mark.parametrize("command", ["plan", "apply", "import"])
def test_a_401_says_which_variables_to_check(
    auth_server: AuthServer,
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = auth_server.model()
    before = auth_server.snapshot(model)
    spec = write_spec(tmp_path, f"version: 1\nmodels:\n  {model}:\n    tags: {{team: x}}\n")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "editor")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    args = [command] if command == "import" else [command, str(spec)]
    result = run_cli(capsys, *args, "--tracking-uri", auth_server.uri)
    assert result.code == 1, result
    err = " ".join(result.err.split())
    assert "refused the credentials (401 Unauthenticated)" in err
    assert "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic-auth)" in err
    assert "MLFLOW_TRACKING_TOKEN" in err
    assert "not-the-password" not in result.out + result.err
    assert "Traceback" not in result.err
    assert auth_server.snapshot(model) == before


# a tree with one named registry whose user has its own variables
TREE_ROOT = """version: 1
registries:
  prod:
    tracking_uri_env: PROD_URI
    username_env: PROD_USER
    password_env: PROD_PASSWORD
default_registry: prod
include: [teams/*.yaml]
"""


def test_a_named_registrys_refusals_name_its_user_and_its_variables(
    auth_server: AuthServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MLflow's own variables name another user: a 403 names the registry's user (it holds READ
    only), a 401 the registry's variables."""
    model = auth_server.model()
    before = auth_server.snapshot(model)
    (tmp_path / "registry.yaml").write_text(TREE_ROOT)
    (tmp_path / "teams").mkdir()
    (tmp_path / "teams" / "prod.yaml").write_text(
        f"version: 1\nregistry: prod\nmodels:\n  {model}:\n    description: by a reader\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROD_URI", auth_server.uri)
    monkeypatch.setenv("PROD_USER", "reader")
    monkeypatch.setenv("PROD_PASSWORD", auth_server.passwords["reader"])
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "nobody")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-a-password")

    refused = run_cli(capsys, "apply", "registry.yaml", "--no-color")
    assert refused.code == 1, refused
    err = " ".join(refused.err.split())
    assert "403 Permission denied: user 'reader' lacks permissions this plan needs" in err
    assert "nobody" not in refused.out + refused.err
    assert auth_server.passwords["reader"] not in refused.out + refused.err
    assert auth_server.snapshot(model) == before

    monkeypatch.setenv("PROD_PASSWORD", "not-the-password")
    unknown = run_cli(capsys, "plan", "registry.yaml", "--no-color")
    assert unknown.code == 1, unknown
    err = " ".join(unknown.err.split())
    assert "refused the credentials (401 Unauthenticated)" in err
    assert "check this registry's credentials: PROD_USER, PROD_PASSWORD" in err
    assert "not-the-password" not in unknown.out + unknown.err
