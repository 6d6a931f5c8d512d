"""The requests a command makes, sequenced by reconcile against the fake registry: where the
registry is, which clock, what is shown before a write, and what a saved plan may still do."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlflow_gitops.audit import AuditContext
from mlflow_gitops.errors import GitopsError, PermissionDenied, StalePlanError
from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.plan.saved import load_plan
from mlflow_gitops.reconcile import (
    ApplyRequest,
    PlanOutcome,
    PlanRequest,
    apply_request,
    connect,
    plan_request,
    read_models,
)
from mlflow_gitops.reconcile import apply as apply_use_case
from mlflow_gitops.settings import Endpoint, NoTrackingUri, resolve_tracking_uri
from tests.fakes import FakeRegistry
from tests.helpers import write_spec

NOW = datetime(2031, 1, 1, tzinfo=UTC)
SERVER = "http://registry.example:5000"
# two days in Staging at NOW, under a one-day soak: promotable by NOW, not by the wall clock
SPEC = """
version: 1
defaults:
  policy: {min_time_in_staging: 1d}
models:
  m:
    versions:
      - {version: 3, stage: Production}
"""
SINCE = {"mlflow_gitops.stage_since": "2030-12-30T00:00:00+00:00"}


@dataclass
class Served(FakeRegistry):
    """The fake registry, served for every URI reconcile opens."""

    opened: list[str] = field(default_factory=list)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Served:
    registry = Served(
        models={"m": ModelState(name="m", versions=(VersionState(3, "Staging", tags=SINCE),))}
    )

    def open_registry(where: Endpoint) -> Served:
        registry.opened.append(where.registry_uri)
        return registry

    monkeypatch.setattr(connect, "open_registry", open_registry)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return registry


def _clock() -> datetime:
    return NOW


def test_plan_request_plans_by_its_clock_and_saves_what_it_shows(
    fake: Served, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path, SPEC)
    out = tmp_path / "plan.json"
    seen: list[str] = []

    outcome = plan_request(PlanRequest(spec, SERVER, NOW, out), seen.append)

    assert outcome.plan.blocked == {}
    assert [type(c).__name__ for c in outcome.plan.changes] == ["TransitionStage"]
    assert outcome.uri == SERVER
    assert seen == [f"reading 1 models from {SERVER} and running gates ..."]
    assert load_plan(out).plan == outcome.plan
    assert json.loads(out.read_text(encoding="utf-8"))["created_at"] == "2031-01-01T00:00:00+00:00"


def test_without_a_uri_the_registry_is_the_local_default_next_to_the_file(
    fake: Served, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path, SPEC)
    outcome = plan_request(PlanRequest(spec, None, NOW))
    assert outcome.uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert fake.opened == [outcome.uri]


def test_a_comment_never_plans_against_the_local_default(
    fake: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec(tmp_path, SPEC)
    with pytest.raises(NoTrackingUri, match="neither --tracking-uri, MLFLOW_TRACKING_URI nor"):
        plan_request(PlanRequest(spec, None, NOW, local_default=False))
    assert fake.opened == []
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SERVER)
    assert plan_request(PlanRequest(spec, None, NOW, local_default=False)).uri == SERVER


@pytest.mark.parametrize(
    ("flag", "env", "file_uri", "expected"),
    [
        ("http://flag", "http://env", "sqlite:///f.db", "http://flag"),
        (None, "http://env", "sqlite:///f.db", "http://env"),
        (None, None, "sqlite:///f.db", "sqlite:////repo/f.db"),
        (None, None, "http://file", "http://file"),
    ],
)
def test_one_precedence_with_or_without_the_local_default(
    flag: str | None,
    env: str | None,
    file_uri: str,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if env:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", env)
    for local_default in (True, False):
        uri = resolve_tracking_uri(flag, file_uri, Path("/repo"), local_default=local_default)
        assert uri == expected


def test_apply_request_shows_the_plan_before_it_is_refused(fake: Served, tmp_path: Path) -> None:
    fake.lacking = {("m", "EDIT")}
    shown: list[tuple[int, int]] = []

    def planned(outcome: PlanOutcome) -> None:
        shown.append((len(outcome.plan.changes), fake.writes))

    request = ApplyRequest(write_spec(tmp_path, SPEC), SERVER, _clock, "c0ffee", "alice", 7)
    with pytest.raises(PermissionDenied):
        apply_request(request, on_plan=planned)
    assert shown == [(1, 0)]  # the plan, before any write
    assert not any(call[0] == "lock" for call in fake.calls)


def test_apply_request_records_what_it_was_given_at_its_clock(fake: Served, tmp_path: Path) -> None:
    request = ApplyRequest(write_spec(tmp_path, SPEC), SERVER, _clock, "c0ffee", "alice", 7)
    outcome = apply_request(request)
    assert outcome.ok
    assert outcome.result is not None
    assert [s.status for s in outcome.result.steps] == ["applied"]
    assert fake.models["m"].versions[0].stage == "Production"
    (run,) = fake.audit_runs
    assert run.context == AuditContext(commit="c0ffee", pr=7, actor="alice")
    assert run.started_at == int(NOW.timestamp() * 1000)


def test_an_empty_plan_applies_nothing_not_even_the_lock(fake: Served, tmp_path: Path) -> None:
    done = "version: 1\nmodels:\n  m:\n    versions:\n      - {version: 3, stage: Staging}\n"
    outcome = apply_request(ApplyRequest(write_spec(tmp_path, done), SERVER, _clock))
    assert outcome.result is None
    assert outcome.ok
    assert outcome.plan.is_empty
    assert [call[0] for call in fake.calls] == ["read"]


@pytest.mark.parametrize(("uri", "workers"), [("sqlite:///r.db", 1), (SERVER, 6)])
def test_sqlite_is_applied_by_one_worker(
    uri: str, workers: int, fake: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given: list[Any] = []
    real = apply_use_case.apply_plan

    def apply_plan(*args: Any, **kwargs: Any) -> Any:
        given.append(kwargs["parallelism"])
        return real(*args, **kwargs)

    monkeypatch.setattr(apply_use_case, "apply_plan", apply_plan)
    apply_request(ApplyRequest(write_spec(tmp_path, SPEC), uri, _clock, parallelism=6))
    assert given == [workers]


def test_a_saved_plan_applies_to_its_registry_only_while_fresh(
    fake: Served, tmp_path: Path
) -> None:
    out = tmp_path / "plan.json"
    planned = plan_request(PlanRequest(write_spec(tmp_path, SPEC), SERVER, NOW, out))
    shown: list[PlanOutcome] = []

    applied = apply_request(ApplyRequest(out, SERVER, _clock, "c0ffee"), on_plan=shown.append)

    assert [o.plan for o in shown] == [planned.plan]
    assert shown[0].folder == tmp_path.resolve()  # git is asked in the file's folder
    assert applied.ok
    assert fake.models["m"].versions[0].stage == "Production"
    with pytest.raises(StalePlanError, match="registry changed since this plan was made"):
        apply_request(ApplyRequest(out, SERVER, _clock, "c0ffee"))
    with pytest.raises(StalePlanError, match="but the URIs given point at"):
        apply_request(ApplyRequest(out, "http://elsewhere:5000", _clock))


def test_read_models_names_every_model_the_registry_lacks(fake: Served) -> None:
    assert list(read_models(fake, SERVER, ["m"]).models) == ["m"]
    assert list(read_models(fake, SERVER, None).models) == ["m"]
    with pytest.raises(GitopsError) as missing:
        read_models(fake, "http://bob:s3cret@h:5000", ["m", "x", "M"])
    assert missing.value.message == "no registered model named 'M', 'x' at http://bob:***@h:5000"
    assert "case-sensitive" in missing.value.hint
