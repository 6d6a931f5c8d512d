"""The apply lock on a basic-auth server: every wait has a deadline and a pause, and a lock this
user cannot break or read ends the apply (exit 1, nothing changed) saying who holds it and what
to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.auth.harness import AuthServer
from tests.cli_runner import run_cli
from tests.helpers import write_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _spec(folder: Path, model: str) -> Path:
    return write_spec(
        folder,
        f"""
        version: 1
        models:
          {model}:
            tags: {{team: payments}}
            versions:
              - version: 2
                stage: Staging
        """,
    )


def test_a_stale_lock_of_another_user_is_reported_not_spun_on(
    auth_server: AuthServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = auth_server.model()
    before = auth_server.snapshot(model)
    left = auth_server.hold_lock("other", lease_in_s=-600)  # a killed apply of user `other`
    monkeypatch.setenv("MLFLOW_GITOPS_LOCK_WAIT_S", "30")
    try:
        with auth_server.as_user("editor"):
            result = run_cli(
                capsys, "apply", str(_spec(tmp_path, model)), "--tracking-uri", auth_server.uri
            )
        assert result.code == 1, result
        err = " ".join(result.err.split())
        assert "commit 1a2b3c4, by other-in-ci" in err  # who holds it
        assert "MLflow user 'other'" in err
        assert "lease ran out" in err
        assert "user 'editor' may not delete it" in err
        assert "needs MANAGE" in err
        assert "the MLflow user 'other' or an MLflow admin may delete the registered model" in err
        assert "nothing was applied" in err
        # nothing changed: the lock is the other user's, untouched; the model as it was
        assert auth_server.lock_tags() == left
        assert auth_server.snapshot(model) == before
        # an admin may break it: the apply then runs and leaves no lock
        with auth_server.as_user("admin"):
            broken = run_cli(
                capsys, "apply", str(_spec(tmp_path, model)), "--tracking-uri", auth_server.uri
            )
        assert broken.code == 0, broken
        assert auth_server.lock_tags() is None
        with auth_server.as_user("admin"):
            assert auth_server.client().get_model_version(model, "2").current_stage == "Staging"
    finally:
        auth_server.drop_lock()


def test_a_lock_the_user_cannot_read_ends_at_the_deadline_with_what_is_missing(
    closed_server: AuthServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # default_permission = NO_PERMISSIONS: `editor` holds EDIT on its model and nothing on the
    # lock `other` made, so reading the lock answers 403 (once read as "released meanwhile")
    model = closed_server.model()
    before = closed_server.snapshot(model)
    left = closed_server.hold_lock("other", lease_in_s=3600)
    monkeypatch.setenv("MLFLOW_GITOPS_LOCK_WAIT_S", "2")
    try:
        with closed_server.as_user("editor"):
            result = run_cli(
                capsys, "apply", str(_spec(tmp_path, model)), "--tracking-uri", closed_server.uri
            )
        assert result.code == 1, result
        err = " ".join(result.err.split())
        assert "user 'editor' may not read it" in err
        assert "needs READ" in err
        assert "who holds it and whether its lease ran out are unknown" in err
        assert "grant READ on mlflow-gitops.apply-lock" in err
        assert "nothing was applied" in err
        assert closed_server.lock_tags() == left
        assert closed_server.snapshot(model) == before
    finally:
        closed_server.drop_lock()


def test_a_live_lock_is_waited_for_until_the_deadline_then_named(
    auth_server: AuthServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = auth_server.model()
    before = auth_server.snapshot(model)
    left = auth_server.hold_lock("other", lease_in_s=3600)
    monkeypatch.setenv("MLFLOW_GITOPS_LOCK_WAIT_S", "2")
    try:
        with auth_server.as_user("manager"):
            result = run_cli(
                capsys, "apply", str(_spec(tmp_path, model)), "--tracking-uri", auth_server.uri
            )
        assert result.code == 1, result
        err = " ".join(result.err.split())
        assert "another apply holds the registry's apply lock" in err
        assert "by other-in-ci" in err
        assert "MLflow user 'other'" in err
        assert "MLFLOW_GITOPS_LOCK_WAIT_S" in err
        assert auth_server.lock_tags() == left
        assert auth_server.snapshot(model) == before
    finally:
        auth_server.drop_lock()
