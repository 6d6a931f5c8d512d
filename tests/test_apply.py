"""The applier against the fake registry: order, idempotence, annotations, partial failure."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlflow_gitops.apply import apply
from mlflow_gitops.audit import AuditContext
from mlflow_gitops.errors import SpecError
from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.plan.planner import plan
from mlflow_gitops.reconcile import Planned, apply_plan, make_plan
from mlflow_gitops.record import HISTORY_MARKER, read_record
from tests.fakes import FakeRegistry
from tests.helpers import load_text

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
AUDIT = AuditContext(commit="1a2b3c4d5e6f", pr=12, actor="alice")
RUN = "0123456789abcdef0123456789abcdef"

SPEC = f"""
version: 1
models:
  m:
    description: Trip duration.
    tags: {{team: rides}}
    aliases: {{champion: 3, challenger: 'run:{RUN}'}}
    versions:
      - version: 2
        stage: Staging
        description: GBR
      - version: 3
        stage: Production
      - run: {RUN}
        stage: Staging
  other:
    tags: {{team: search}}
"""


def registry() -> FakeRegistry:
    return FakeRegistry(
        models={
            "m": ModelState(
                name="m",
                description="old",
                aliases={"champion": 2},
                versions=(
                    VersionState(1, "Archived"),
                    VersionState(2, "Production", description="GBR\n\nmy notes"),
                    VersionState(3, "Staging"),
                ),
            )
        },
        runs={RUN},
    )


def test_apply_converges_and_second_plan_is_empty(tmp_path: Path) -> None:
    fake = registry()
    desired = load_text(tmp_path, SPEC)
    planned = make_plan(desired, fake, None, NOW)
    result = apply_plan(planned, fake, AUDIT, NOW)
    assert result.ok, result
    assert plan(desired, fake.read(), NOW).is_empty
    m = fake.models["m"]
    assert {v.version: v.stage for v in m.versions} == {
        1: "Archived",
        2: "Staging",
        3: "Production",
        4: "Staging",
    }
    assert m.aliases == {"champion": 3, "challenger": 4}
    assert fake.models["other"].tags["team"] == "search"
    assert fake.gaps == [], "a held stage was left without a holder"


def test_a_lock_that_cannot_be_released_is_reported_beside_the_results(tmp_path: Path) -> None:
    fake = registry()
    fake.unlock_error = "could not delete its apply lock"
    result = apply_plan(make_plan(load_text(tmp_path, SPEC), fake, None, NOW), fake, AUDIT, NOW)
    assert not result.ok
    *changes, last = result.steps
    assert changes
    assert all(s.status == "applied" for s in changes)
    assert (last.what, last.status) == ("release the apply lock", "failed")
    assert "could not delete its apply lock; its lease runs out 30 s" in last.detail
    assert plan(load_text(tmp_path, SPEC), fake.read(), NOW).is_empty  # the changes stand


def test_new_holder_is_promoted_before_the_old_one_moves(tmp_path: Path) -> None:
    fake = registry()
    apply_plan(make_plan(load_text(tmp_path, SPEC), fake, None, NOW), fake, AUDIT, NOW)
    transitions = [c[1:] for c in fake.calls if c[0] == "transition_stage"]
    assert transitions.index(("m", "3", "Production")) < transitions.index(("m", "2", "Staging"))


def test_annotations_record_who_what_when_and_keep_the_users_text(tmp_path: Path) -> None:
    fake = registry()
    apply_plan(make_plan(load_text(tmp_path, SPEC), fake, None, NOW), fake, AUDIT, NOW)
    v3 = fake.models["m"].version(3)
    assert v3 is not None
    record = read_record(v3.tags)
    assert record["change"].startswith("Staging -> Production")
    assert (record["commit"], record["pr"], record["actor"]) == ("1a2b3c4d5e6f", 12, "alice")
    assert record["changed_at"] == "2026-11-27T12:00:00+00:00"
    assert record["audit_run"] == "run1"
    assert "2026-11-27: Staging -> Production (commit 1a2b3c4, PR #12, by alice)" in v3.description
    v2 = fake.models["m"].version(2)
    assert v2 is not None
    # the file's description replaces the user's text; the history block follows it
    assert v2.description.startswith("GBR\n\n" + HISTORY_MARKER)
    assert "Production -> Staging" in v2.description
    assert "alias champion moved to version 3" in v2.description


def test_a_failed_step_stops_that_model_reports_and_reapply_finishes(tmp_path: Path) -> None:
    desired = load_text(tmp_path, SPEC)
    fake = registry()
    fake.fail_on = 4
    result = apply_plan(make_plan(desired, fake, None, NOW), fake, AUDIT, NOW, parallelism=1)
    assert not result.ok
    statuses = [s.status for s in result.steps if s.model == "m"]
    assert statuses.count("failed") == 1
    assert "not applied" in statuses
    assert all(s.status == "applied" for s in result.steps if s.model == "other")
    fake.fail_on = None
    again = apply_plan(make_plan(desired, fake, None, NOW), fake, AUDIT, NOW)
    assert again.ok
    assert plan(desired, fake.read(), NOW).is_empty


def test_blocked_models_are_not_touched_and_others_apply(tmp_path: Path) -> None:
    text = """
    version: 1
    defaults: {archive_previous: false}
    models:
      m:
        versions:
          - {version: 3, stage: Production}
      other:
        tags: {team: search}
    """
    fake = registry()
    planned = make_plan(load_text(tmp_path, text), fake, None, NOW)
    assert "m" in planned.plan.blocked
    result = apply(planned.plan, planned.observed, fake, AUDIT, NOW)
    assert {s.status for s in result.steps if s.model == "m"} == {"blocked"}
    assert not any(c[1] == "m" for c in fake.calls if c[0] != "read")
    assert fake.models["other"].tags["team"] == "search"


@pytest.mark.parametrize("parallelism", [1, 8])
def test_many_models_apply_in_parallel_with_the_same_result(
    tmp_path: Path, parallelism: int
) -> None:
    models = "\n".join(f"  m{i}:\n    tags: {{n: '{i}'}}" for i in range(20))
    desired = load_text(tmp_path, f"version: 1\nmodels:\n{models}\n")
    fake = FakeRegistry()
    result = apply_plan(
        make_plan(desired, fake, None, NOW), fake, AUDIT, NOW, parallelism=parallelism
    )
    assert result.ok
    assert [s.model for s in result.steps] == sorted(s.model for s in result.steps)
    assert plan(desired, fake.read(), NOW).is_empty


def test_stale_saved_plan_is_refused(tmp_path: Path) -> None:
    from mlflow_gitops.errors import StalePlanError
    from mlflow_gitops.plan.saved import load_plan
    from mlflow_gitops.reconcile import check_fresh, save_plan

    fake = registry()
    desired = load_text(tmp_path, SPEC)
    planned = make_plan(desired, fake, None, NOW)
    out = tmp_path / "plan.json"
    save_plan(planned.plan, out, "sqlite:///x.db", desired.path, NOW)
    saved = load_plan(out)
    assert saved.plan == planned.plan
    assert isinstance(check_fresh(saved, fake, None, NOW), Planned)
    fake.transition_stage("m", 1, "Staging")  # someone changes the registry meanwhile
    with pytest.raises(StalePlanError, match="changed since this plan was made"):
        check_fresh(saved, fake, None, NOW)


def test_each_model_hands_over_against_its_own_stages(tmp_path: Path) -> None:
    """Transitions of several models are ordered model by model: every model's promotion archives
    its own old holder in the same call, not only the first model's."""
    models = {
        f"m{i}": ModelState(
            name=f"m{i}", versions=(VersionState(1, "Production"), VersionState(2, "Staging"))
        )
        for i in range(3)
    }
    fake = FakeRegistry(models=models)
    text = "version: 1\nmodels:\n" + "".join(
        f"  m{i}:\n    versions:\n      - {{version: 2, stage: Production}}\n" for i in range(3)
    )
    planned = make_plan(load_text(tmp_path, text), fake, None, NOW)
    promotions = [c for c in planned.plan.changes if getattr(c, "after", None) == "Production"]
    assert [getattr(c, "archive_others", False) for c in promotions] == [True, True, True]
    assert apply_plan(planned, fake, AUDIT, NOW).ok
    assert all(m.version(1).stage == "Archived" for m in fake.models.values())  # type: ignore[union-attr]


def test_make_plan_measures_soak_time_by_the_clock_it_is_given(tmp_path: Path) -> None:
    # two days in Staging at `now`, under min_time_in_staging: 1d; by the wall clock (2026) the
    # version entered Staging in the future, which once blocked it with a negative duration
    now = datetime(2031, 1, 1, tzinfo=UTC)
    since = {"mlflow_gitops.stage_since": "2030-12-30T00:00:00+00:00"}
    fake = FakeRegistry(
        models={"m": ModelState(name="m", versions=(VersionState(3, "Staging", tags=since),))}
    )
    desired = load_text(
        tmp_path,
        """
        version: 1
        defaults:
          policy: {min_time_in_staging: 1d}
        models:
          m:
            versions:
              - {version: 3, stage: Production}
        """,
    )
    planned = make_plan(desired, fake, None, now)
    assert planned.plan.blocked == {}
    assert [type(c).__name__ for c in planned.plan.changes] == ["TransitionStage"]
    assert planned.plan == plan(desired, fake.read(["m"]), now)


def test_plan_refuses_a_registration_the_registry_would_refuse_at_the_entry(
    tmp_path: Path,
) -> None:
    """A registry that requires a signature (Unity Catalog) refuses the run's model: plan says
    so at the entry's `run:` line, naming the run and the model path, and nothing is planned."""
    fake = registry()
    fake.refusals = {f"runs:/{RUN}/model": "the model was logged without a signature"}
    desired = load_text(tmp_path, SPEC)
    with pytest.raises(SpecError) as refused:
        make_plan(desired, fake, None, NOW)
    (issue,) = refused.value.issues
    assert f"- run: {RUN}" in desired.path.read_text().splitlines()[issue.line - 1]
    assert issue.path.startswith("models.m.versions[")
    assert issue.path.endswith("].run")
    assert RUN in issue.message
    assert "'model'" in issue.message
    assert "without a signature" in issue.message
    assert "signature" in issue.hint
    assert fake.writes == 0
