"""Copies matched by provenance, each side's credentials, and the fake's copy contract: no mlflow."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from mlflow_gitops.credentials import CREDENTIAL_VARIABLES, Credentials
from mlflow_gitops.errors import RegistryError
from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.record import COPIES_EXPERIMENT, SourceRef, provenance_tags
from mlflow_gitops.registry.copy import (
    CopyRun,
    Leftovers,
    copied_elsewhere,
    find_copies,
    leftovers,
)
from mlflow_gitops.registry.mlflow.env import credentials_env
from tests.fakes import FakeRegistry

DEV = "http://dev.internal:5000"
REF = SourceRef(DEV, "taxi", 3)


def version(number: int, tags: dict[str, str]) -> VersionState:
    return VersionState(version=number, tags=tags)


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ([], {}),
        ([version(1, {})], {}),
        ([version(1, provenance_tags(REF, "r1"))], {REF: 1}),
        # the oldest copy wins when a hand-made duplicate exists
        (
            [version(4, provenance_tags(REF, "r1")), version(2, provenance_tags(REF, None))],
            {REF: 2},
        ),
        # another version, model or registry is another source
        ([version(1, provenance_tags(SourceRef(DEV, "taxi", 4), "r"))], {}),
        ([version(1, provenance_tags(SourceRef(DEV, "other", 3), "r"))], {}),
        ([version(1, provenance_tags(SourceRef("http://prod:5000", "taxi", 3), "r"))], {}),
        # unreadable provenance is no provenance
        ([version(1, {**provenance_tags(REF, "r"), "mlflow_gitops.copied_from.version": "x"})], {}),
    ],
)
def test_find_copies_matches_registry_model_and_version(
    versions: list[VersionState], expected: dict[SourceRef, int]
) -> None:
    model = ModelState(name="taxi-prod", versions=tuple(versions))
    assert find_copies(model, [REF, SourceRef(DEV, "taxi", 9)]) == expected


def test_find_copies_of_an_absent_model_is_empty() -> None:
    assert find_copies(None, [REF]) == {}


def test_provenance_is_the_tools_own_tags() -> None:
    copy = version(1, {**provenance_tags(REF, "r1"), "team": "rides"})
    assert copy.user_tags == {"team": "rides"}  # the planner neither shows nor removes them


def test_credentials_env_sets_exactly_one_side_and_restores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "prod-user")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "prod-secret")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    with credentials_env(Credentials(token="dev-token")):
        assert {k: os.environ.get(k) for k in CREDENTIAL_VARIABLES} == {
            "MLFLOW_TRACKING_USERNAME": None,
            "MLFLOW_TRACKING_PASSWORD": None,
            "MLFLOW_TRACKING_TOKEN": "dev-token",
        }
        with credentials_env(Credentials()):  # a registry without credentials gets none
            assert not any(os.environ.get(k) for k in CREDENTIAL_VARIABLES)
        assert os.environ["MLFLOW_TRACKING_TOKEN"] == "dev-token"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "prod-secret"
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ
    with pytest.raises(ValueError, match="restores"), credentials_env(Credentials("u", "p")):
        raise ValueError("a failing call restores them too")
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "prod-user"


def test_credentials_env_holds_the_process_lock_while_it_runs() -> None:
    """Another thread cannot set its own registry's credentials while a side's calls run."""
    from mlflow_gitops.registry.mlflow import env

    taken: list[bool] = []

    def other() -> None:
        got = env._ENV_LOCK.acquire(blocking=False)
        taken.append(got)
        if got:
            env._ENV_LOCK.release()

    with credentials_env(Credentials("one", "pw1")):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert taken == [False]
    other()
    assert taken == [False, True]


def test_credentials_never_show_in_a_repr() -> None:
    text = repr(Credentials("alice", "s3cret-pw", "tok-123"))
    assert "alice" in text
    assert "s3cret-pw" not in text
    assert "tok-123" not in text


def test_find_copies_does_not_import_mlflow() -> None:
    """The planner may import it: `validate` and `--help` stay mlflow-free."""
    code = "import sys, mlflow_gitops.registry.copy; assert 'mlflow' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def fakes() -> tuple[FakeRegistry, FakeRegistry]:
    dev = FakeRegistry(
        models={
            "taxi": ModelState(
                name="taxi",
                versions=(
                    VersionState(
                        version=3,
                        source="models:/m-1",
                        run_id="r3",
                        description="GBR\n\n<!-- mlflow-gitops history -->\n- 2026: x",
                        tags={"team": "rides", "mlflow_gitops.change": "None -> Staging"},
                    ),
                ),
            )
        }
    )
    prod = FakeRegistry()
    dev.identity, prod.identity = DEV, "http://prod.internal:5000"
    return dev, prod


def test_the_fake_copies_once_with_provenance() -> None:
    dev, prod = fakes()
    number = prod.copy_version(dev, "taxi", 3, "taxi-prod").version
    copied = prod.models["taxi-prod"].version(number)
    assert copied is not None
    assert copied.tags == {"team": "rides", **provenance_tags(REF, "r3")}
    assert copied.description == "GBR"
    assert copied.run_id != "r3"  # a run in the destination
    assert prod.copy_version(dev, "taxi", 3, "taxi-prod").version == number
    assert len(prod.models["taxi-prod"].versions) == 1


def test_the_fake_refuses_a_missing_or_unreadable_source() -> None:
    dev, prod = fakes()
    assert dev.describe_source("taxi", 9).problem == (
        f"version 9 of model 'taxi' does not exist at {DEV}"
    )
    dev.unreadable = frozenset({("taxi", 3)})
    with pytest.raises(RegistryError, match="cannot be read"):
        prod.copy_version(dev, "taxi", 3, "taxi-prod")
    assert prod.models == {}


# --- matching by the source run's id, leftover runs, signatures ---------------------------------

LOCAL = SourceRef("http://localhost:5000", "taxi", 3)  # the same dev server, another host name


@pytest.mark.parametrize(
    ("versions", "runs", "expected"),
    [
        # recorded under another host name: matched by the source run's id
        ([version(2, provenance_tags(REF, "r3"))], {LOCAL: "r3"}, {LOCAL: 2}),
        # another run (another server that happens to hold taxi/3): no match
        ([version(2, provenance_tags(REF, "r3"))], {LOCAL: "r9"}, {}),
        # the source not asked, or a copy whose source had no run: identity only, as before
        ([version(2, provenance_tags(REF, "r3"))], {}, {}),
        ([version(2, provenance_tags(REF, None))], {LOCAL: "r3"}, {}),
        # same run, another version or model of the source: no match
        ([version(2, provenance_tags(SourceRef(DEV, "taxi", 4), "r3"))], {LOCAL: "r3"}, {}),
        ([version(2, provenance_tags(SourceRef(DEV, "other", 3), "r3"))], {LOCAL: "r3"}, {}),
        # an identity match wins over a run match, whichever is older
        (
            [version(1, provenance_tags(REF, "r3")), version(5, provenance_tags(LOCAL, "r3"))],
            {LOCAL: "r3"},
            {LOCAL: 5},
        ),
    ],
)
def test_find_copies_matches_the_source_run_under_another_identity(
    versions: list[VersionState], runs: dict[SourceRef, str], expected: dict[SourceRef, int]
) -> None:
    model = ModelState(name="taxi-prod", versions=tuple(versions))
    assert find_copies(model, [LOCAL], runs) == expected


def test_the_source_is_asked_only_when_another_identity_recorded_that_version() -> None:
    elsewhere = ModelState(name="p", versions=(version(1, provenance_tags(REF, "r3")),))
    assert copied_elsewhere(elsewhere, LOCAL)
    assert not copied_elsewhere(elsewhere, REF)  # matched by identity already
    assert not copied_elsewhere(elsewhere, SourceRef(LOCAL.registry, "taxi", 4))
    runless = ModelState(name="p", versions=(version(1, provenance_tags(REF, None)),))
    assert not copied_elsewhere(runless, LOCAL)
    assert not copied_elsewhere(None, LOCAL)


FINISHED = CopyRun("a", True, "model", "mlflow-artifacts:/1/a/artifacts")
OLD = CopyRun("b", True, None)  # written by a release that did not record the model's path
RUNNING = CopyRun("c", False, "model")


@pytest.mark.parametrize(
    ("runs", "used", "reuse", "remove"),
    [
        ((), (), None, ()),
        ((FINISHED,), (), FINISHED, ()),
        ((FINISHED,), ("a",), None, ()),  # a version uses it: not a leftover
        ((OLD,), (), None, ()),  # cannot tell where its model is: left alone, copied anew
        ((RUNNING,), (), None, (RUNNING,)),  # killed during the upload: deleted
        ((RUNNING, OLD, FINISHED), (), FINISHED, (RUNNING,)),
    ],
)
def test_leftover_runs_are_reused_when_finished_and_deleted_when_not(
    runs: tuple[CopyRun, ...],
    used: tuple[str, ...],
    reuse: CopyRun | None,
    remove: tuple[CopyRun, ...],
) -> None:
    assert leftovers(runs, used) == Leftovers(reuse, remove)


def test_leftovers_say_what_the_copy_does_with_them() -> None:
    assert Leftovers(None, ()).sentence(done=False) == ""
    both = Leftovers(FINISHED, (RUNNING,))
    assert both.sentence(done=False) == (
        "registers from the run a that an interrupted apply left in the experiment "
        f"{COPIES_EXPERIMENT} (its files are not copied again); deletes the unfinished run c "
        f"that an interrupted apply left in the experiment {COPIES_EXPERIMENT}"
    )
    assert both.sentence(done=True).startswith("registered from the run a ")
    assert "; deleted the unfinished run c " in both.sentence(done=True)
