"""The apply lock on a basic-auth server: every wait has a deadline and a pause, and a lock this
user cannot break or read ends the apply (exit 1, nothing changed) saying who holds it and what
to do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.auth.harness import AuthServer
from tests.cli_runner import Outcome, run_cli
from tests.helpers import write_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass(frozen=True)
class Held:
    """A lock another user (`other`) holds on a server, and a model an apply would change."""

    server: AuthServer
    model: str
    before: object  # the model as it was
    left: dict[str, str]  # the lock's tags as `other` left them
    spec: Path
    capsys: pytest.CaptureFixture[str]

    def apply(self, user: str) -> Outcome:
        """`apply` of a file that changes the model, as `user`."""
        with self.server.as_user(user):
            return run_cli(self.capsys, "apply", str(self.spec), "--tracking-uri", self.server.uri)

    def refused(self, user: str) -> str:
        """`apply` as `user` ends with exit 1 and changes nothing (the lock is `other`'s,
        untouched; the model as it was); returns what it said, on one line."""
        result = self.apply(user)
        assert result.code == 1, result
        assert self.server.lock_tags() == self.left
        assert self.server.snapshot(self.model) == self.before
        return " ".join(result.err.split())


@pytest.fixture
def lock_of_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[AuthServer, float, float], Held]]:
    """hold(server, lease_in_s, wait_s): a lock of user `other` on the server (its lease running
    out in lease_in_s, negative: ran out), and this process waiting wait_s for a lock; the lock
    is dropped afterwards."""
    held: list[AuthServer] = []

    def hold(server: AuthServer, lease_in_s: float, wait_s: float) -> Held:
        model = server.model()
        before = server.snapshot(model)
        left = server.hold_lock("other", lease_in_s=lease_in_s)
        held.append(server)
        monkeypatch.setenv("MLFLOW_GITOPS_LOCK_WAIT_S", str(wait_s))
        spec = write_spec(
            tmp_path,
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
        return Held(server, model, before, left, spec, capsys)

    yield hold
    for server in held:
        server.drop_lock()


def test_a_stale_lock_of_another_user_is_reported_not_spun_on(
    auth_server: AuthServer, lock_of_other: Callable[[AuthServer, float, float], Held]
) -> None:
    held = lock_of_other(auth_server, -600, 30)  # a killed apply of user `other`
    err = held.refused("editor")
    assert "commit 1a2b3c4, by other-in-ci" in err  # who holds it
    assert "MLflow user 'other'" in err
    assert "lease ran out" in err
    assert "user 'editor' may not delete it" in err
    assert "needs MANAGE" in err
    assert "the MLflow user 'other' or an MLflow admin may delete the registered model" in err
    assert "nothing was applied" in err
    # an admin may break it: the apply then runs and leaves no lock
    broken = held.apply("admin")
    assert broken.code == 0, broken
    assert auth_server.lock_tags() is None
    with auth_server.as_user("admin"):
        assert auth_server.client().get_model_version(held.model, "2").current_stage == "Staging"


def test_a_lock_the_user_cannot_read_ends_at_the_deadline_with_what_is_missing(
    closed_server: AuthServer, lock_of_other: Callable[[AuthServer, float, float], Held]
) -> None:
    # default_permission = NO_PERMISSIONS: `editor` holds EDIT on its model and nothing on the
    # lock `other` made, so reading the lock answers 403 (once read as "released meanwhile")
    err = lock_of_other(closed_server, 3600, 2).refused("editor")
    assert "user 'editor' may not read it" in err
    assert "needs READ" in err
    assert "who holds it and whether its lease ran out are unknown" in err
    assert "grant READ on mlflow-gitops.apply-lock" in err
    assert "nothing was applied" in err


def test_a_live_lock_is_waited_for_until_the_deadline_then_named(
    auth_server: AuthServer, lock_of_other: Callable[[AuthServer, float, float], Held]
) -> None:
    err = lock_of_other(auth_server, 3600, 2).refused("manager")
    assert "another apply holds the registry's apply lock" in err
    assert "by other-in-ci" in err
    assert "MLflow user 'other'" in err
    assert "MLFLOW_GITOPS_LOCK_WAIT_S" in err
