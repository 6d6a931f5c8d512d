"""What READ, EDIT and MANAGE users can do with plan, apply and import on a basic-auth server;
an apply that lacks a permission is refused before the lock and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_gitops.record import AUDIT_EXPERIMENT, read_record
from tests.auth.harness import AuthServer
from tests.cli_runner import run_cli
from tests.helpers import write_spec
from tests.integration.mlflow_helpers import log_regressor

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _edits(folder: Path, model: str) -> Path:
    """Changes that need EDIT: a model tag, a stage, an alias, a version description."""
    return write_spec(
        folder,
        f"""
        version: 1
        models:
          {model}:
            tags: {{team: payments}}
            aliases: {{challenger: 2}}
            versions:
              - version: 2
                stage: Staging
                description: candidate
        """,
    )


def _deletes_alias(folder: Path, model: str) -> Path:
    """A change that needs MANAGE: deleting an alias."""
    return write_spec(
        folder,
        f"""
        version: 1
        models:
          {model}:
            aliases: {{champion: null}}
        """,
    )


@pytest.mark.parametrize("user", ["reader", "editor", "manager"])
def test_plan_needs_read_only(
    any_auth_server: AuthServer, user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = any_auth_server.model()
    before = any_auth_server.snapshot(model)
    with any_auth_server.as_user(user):
        result = run_cli(
            capsys, "plan", str(_edits(tmp_path, model)), "--tracking-uri", any_auth_server.uri,
            "--detailed-exitcode",
        )  # fmt: skip
    assert result.code == 2, result
    assert "None -> Staging" in result.out
    assert any_auth_server.snapshot(model) == before


def test_a_read_user_apply_is_refused_before_the_lock_and_changes_nothing(
    any_auth_server: AuthServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = any_auth_server.model()
    before = any_auth_server.snapshot(model)
    # a live lock: an apply that went for the lock would wait for it, then fail naming it
    held = any_auth_server.hold_lock("other", lease_in_s=3600)
    monkeypatch.setenv("MLFLOW_GITOPS_LOCK_WAIT_S", "30")
    try:
        with any_auth_server.as_user("reader"):
            result = run_cli(
                capsys, "apply", str(_edits(tmp_path, model)), "--tracking-uri", any_auth_server.uri
            )
        assert result.code == 1, result
        err = " ".join(result.err.split())
        assert "403 Permission denied: user 'reader' lacks permissions this plan needs" in err
        assert "nothing was changed (not even the apply lock)" in err
        assert f"{model}: set model tag team=payments;" in err
        assert "needs EDIT" in err
        assert "apply lock" not in err.replace("not even the apply lock", "")
        assert "Run apply again" not in result.out + result.err
        assert any_auth_server.snapshot(model) == before
        assert any_auth_server.lock_tags() == held
    finally:
        any_auth_server.drop_lock()


@pytest.mark.parametrize("user", ["editor", "manager"])
def test_edit_and_manage_users_apply_stages_tags_aliases_descriptions(
    any_auth_server: AuthServer, user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = any_auth_server.model()
    spec = _edits(tmp_path, model)
    with any_auth_server.as_user(user):
        result = run_cli(capsys, "apply", str(spec), "--tracking-uri", any_auth_server.uri)
        assert result.code == 0, result
        again = run_cli(
            capsys, "plan", str(spec), "--tracking-uri", any_auth_server.uri, "--detailed-exitcode"
        )
    assert again.code == 0, again
    assert any_auth_server.lock_tags() is None
    with any_auth_server.as_user("admin"):
        c = any_auth_server.client()
        m = c.get_registered_model(model)
        v2 = c.get_model_version(model, "2")
    assert m.tags["team"] == "payments"
    assert m.aliases == {"champion": "1", "challenger": "2"}
    assert v2.current_stage == "Staging"
    assert v2.description.startswith("candidate")
    assert read_record(v2.tags)["change"].startswith("None -> Staging")


def test_an_edit_user_may_not_delete_an_alias_and_is_refused_before_any_write(
    any_auth_server: AuthServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = any_auth_server.model()
    before = any_auth_server.snapshot(model)
    with any_auth_server.as_user("editor"):
        result = run_cli(
            capsys,
            "apply",
            str(_deletes_alias(tmp_path, model)),
            "--tracking-uri",
            any_auth_server.uri,
        )
    assert result.code == 1, result
    err = " ".join(result.err.split())
    assert f"{model}: delete alias champion: needs MANAGE" in err
    assert "user 'editor'" in err
    assert "nothing was changed" in err
    assert any_auth_server.snapshot(model) == before
    assert any_auth_server.lock_tags() is None


def test_a_manage_user_deletes_an_alias(
    any_auth_server: AuthServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = any_auth_server.model()
    with any_auth_server.as_user("manager"):
        result = run_cli(
            capsys,
            "apply",
            str(_deletes_alias(tmp_path, model)),
            "--tracking-uri",
            any_auth_server.uri,
        )
    assert result.code == 0, result
    with any_auth_server.as_user("admin"):
        assert any_auth_server.client().get_registered_model(model).aliases == {}
    assert any_auth_server.lock_tags() is None


@pytest.mark.parametrize("user", ["reader", "editor", "manager"])
def test_import_reproduces_the_registry_and_shows_usernames(
    any_auth_server: AuthServer, user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # MLFLOW_TRACKING_USERNAME=rides once printed `team: ***`: a username is not a secret
    model = any_auth_server.model()
    with any_auth_server.as_user("admin"):
        any_auth_server.client().set_registered_model_tag(model, "owner", f"{user}-platform")
        any_auth_server.client().set_registered_model_tag(model, "team", user)
    before = any_auth_server.snapshot(model)
    out = tmp_path / "imported.yaml"
    with any_auth_server.as_user(user):
        printed = run_cli(capsys, "import", "--model", model, "--tracking-uri", any_auth_server.uri)
        written = run_cli(
            capsys, "import", "--model", model, "--tracking-uri", any_auth_server.uri,
            "--out", str(out),
        )  # fmt: skip
        assert printed.code == 0, printed
        assert written.code == 0, written
        planned = run_cli(
            capsys, "plan", str(out), "--tracking-uri", any_auth_server.uri, "--detailed-exitcode"
        )
    assert f"team: {user}\n" in printed.out
    assert f"owner: {user}-platform\n" in printed.out
    assert "***" not in printed.out
    body = out.read_text()
    assert printed.out[printed.out.index("models:") :] == body[body.index("models:") :]
    assert planned.code == 0, planned
    assert any_auth_server.snapshot(model) == before


def test_a_model_the_user_cannot_read_is_not_created_again(
    closed_server: AuthServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # default_permission = NO_PERMISSIONS and no grant: the model is hidden from `other`, so its
    # plan shows it as new; apply must find out before writing, not try to create it
    model = closed_server.model()
    before = closed_server.snapshot(model)
    spec = write_spec(tmp_path, f"version: 1\nmodels:\n  {model}:\n    tags: {{team: payments}}\n")
    with closed_server.as_user("other"):
        result = run_cli(capsys, "apply", str(spec), "--tracking-uri", closed_server.uri)
    assert result.code == 1, result
    err = " ".join(result.err.split())
    assert f"registered model: {model}" in result.out  # the plan showed it as new
    assert f"{model}: exists but this user may not read it (READ)" in err
    assert "nothing was changed" in err
    assert closed_server.snapshot(model) == before
    assert closed_server.lock_tags() is None


def test_a_read_grant_on_a_closed_server_is_enough_to_plan(
    closed_server: AuthServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = closed_server.model()
    with closed_server.as_user("reader"):
        result = run_cli(
            capsys, "plan", str(_edits(tmp_path, model)), "--tracking-uri", closed_server.uri,
            "--detailed-exitcode",
        )  # fmt: skip
    assert result.code == 2, result
    assert "create model" not in result.out


def test_an_edit_user_registers_a_version_from_a_run(
    auth_server: AuthServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # registering needs EDIT; the one-off registration tag stays (deleting it needs MANAGE)
    model = auth_server.model()
    with auth_server.as_user("admin"):
        run = log_regressor(auth_server.uri).run_id  # a real logged scikit-learn model
    spec = write_spec(
        tmp_path,
        f"""
        version: 1
        models:
          {model}:
            versions:
              - run: {run}/model
                stage: Staging
        """,
    )
    with auth_server.as_user("editor"):
        result = run_cli(capsys, "apply", str(spec), "--tracking-uri", auth_server.uri)
        assert result.code == 0, result
        again = run_cli(
            capsys, "plan", str(spec), "--tracking-uri", auth_server.uri, "--detailed-exitcode"
        )
    assert again.code == 0, again
    with auth_server.as_user("admin"):
        v3 = auth_server.client().get_model_version(model, "3")
    assert v3.run_id == run
    assert v3.current_stage == "Staging"
    assert "mlflow_gitops.registration" in v3.tags
    assert auth_server.lock_tags() is None


def test_an_edit_user_who_may_not_write_the_audit_record_changes_nothing(
    any_auth_server: AuthServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `other` holds EDIT on the model but only default_permission (READ) on mlflow-gitops-audit
    model = any_auth_server.model()
    any_auth_server.grant("other", model, "EDIT")
    before = any_auth_server.snapshot(model)
    with any_auth_server.as_user("other"):
        result = run_cli(
            capsys, "apply", str(_edits(tmp_path, model)), "--tracking-uri", any_auth_server.uri
        )
    assert result.code == 1, result
    said = " ".join((result.out + result.err).split())
    if any_auth_server.generation == "3":
        # basic-auth answers the user's own permission on the experiment: refused before the lock
        assert "nothing was changed (not even the apply lock)" in said
        assert f"experiment {AUDIT_EXPERIMENT} (the audit record of every apply)" in said
        assert "needs EDIT" in said
        assert f"{model}:" not in said  # the model itself is writable
    else:
        # MLflow 2.x cannot be asked: the run is opened under the lock, before the first change
        assert "cannot write the audit record, so nothing was applied" in said
        assert (
            "user 'other' may not write the audit record (experiment mlflow-gitops-audit)" in said
        )
    assert "Run apply again" not in said
    assert any_auth_server.snapshot(model) == before
    assert any_auth_server.lock_tags() is None
