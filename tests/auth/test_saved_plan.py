"""A saved plan knows its registry: made against a URI with credentials it stores the registry's
identity (never the credentials), is refused against any other registry, and never falls back
to sqlite:///mlflow.db next to the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.auth.harness import AuthServer
from tests.cli_runner import run_cli
from tests.helpers import write_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_plan_made_with_credentials_in_the_uri_applies_only_to_its_registry(
    auth_server: AuthServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = auth_server.model()
    before = auth_server.snapshot(model)
    spec = write_spec(
        tmp_path,
        f"version: 1\nmodels:\n  {model}:\n    versions:\n      - version: 2\n"
        "        stage: Staging\n",
    )
    password = auth_server.passwords["editor"]
    with_credentials = auth_server.uri.replace("http://", f"http://editor:{password}@")
    saved = tmp_path / "plan.json"
    made = run_cli(
        capsys, "plan", str(spec), "--tracking-uri", with_credentials, "--out", str(saved)
    )
    assert made.code == 0, made
    text = saved.read_text()
    assert password not in text
    # nothing but the plan names the registry from here on
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    doc = json.loads(text)
    assert doc["registry"] == auth_server.uri  # http://127.0.0.1:<port>, no credentials
    assert doc["tracking_uri"] is None

    # no URI given: refused, naming the registry; no sqlite:///mlflow.db is made or used
    bare = run_cli(capsys, "apply", str(saved))
    assert bare.code == 1, bare
    err = " ".join(bare.err.split())
    assert f"this plan was made against {auth_server.uri}" in err
    assert f"--tracking-uri {auth_server.uri}" in err
    assert not (tmp_path / "mlflow.db").exists()
    assert not Path("mlflow.db").exists()

    # another registry: refused before it is opened
    other = tmp_path / "other.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    elsewhere = run_cli(capsys, "apply", str(saved), "--tracking-uri", f"sqlite:///{other}")
    assert elsewhere.code == 1, elsewhere
    assert "but the URIs given point at sqlite:///" in " ".join(elsewhere.err.split())
    assert not other.exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    from_env = run_cli(capsys, "apply", str(saved))
    assert from_env.code == 1, from_env
    assert not other.exists()
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert auth_server.snapshot(model) == before

    # the same registry (credentials from the environment): applied
    with auth_server.as_user("editor"):
        applied = run_cli(capsys, "apply", str(saved), "--tracking-uri", auth_server.uri + "/")
    assert applied.code == 0, applied
    assert password not in applied.out + applied.err
    with auth_server.as_user("admin"):
        assert auth_server.client().get_model_version(model, "2").current_stage == "Staging"
