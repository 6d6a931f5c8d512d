"""Lifecycle on the fake registry: migrating stages to aliases without a moment of disagreement,
guarded deletion, and the soak-time policy with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlflow_gitops.audit import AuditContext
from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.plan.planner import plan
from mlflow_gitops.reconcile import apply_plan, make_plan
from mlflow_gitops.record import read_record
from tests.fakes import FakeRegistry
from tests.helpers import load_text

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
MIRROR = {"Production": "champion", "Staging": "challenger"}


class WatchingRegistry(FakeRegistry):
    """Checks after every write that each mirrored alias names a holder of its stage."""

    disagreements: list[str]

    def check(self) -> None:
        if not hasattr(self, "disagreements"):
            self.disagreements = []
        for model in self.models.values():
            stages = {v.version: v.stage for v in model.versions}
            for stage, alias in MIRROR.items():
                holder = model.aliases.get(alias)
                if holder is not None and stages.get(holder) != stage:
                    self.disagreements.append(
                        f"{alias} -> v{holder} ({stages.get(holder)}), not {stage}"
                    )

    def transition_stage(
        self, name: str, version: int, stage: str, archive_others: bool = False
    ) -> None:
        super().transition_stage(name, version, stage, archive_others)
        self.check()

    def set_alias(self, name: str, alias: str, version: int) -> None:
        super().set_alias(name, alias, version)
        self.check()


def test_migration_to_aliases_never_disagrees_with_stages(tmp_path: Path) -> None:
    fake = WatchingRegistry(
        models={
            "m": ModelState(
                name="m",
                versions=(
                    VersionState(1, "Archived"),
                    VersionState(2, "Production"),
                    VersionState(3, "Staging"),
                ),
            )
        }
    )
    adopt = load_text(
        tmp_path,
        "version: 1\ndefaults:\n  mirror_stages_to_aliases: {Production: champion, Staging: challenger}\nmodels:\n  m: {}\n",
    )
    assert apply_plan(make_plan(adopt, fake, None, NOW), fake, AuditContext(), NOW).ok
    assert dict(fake.models["m"].aliases) == {"champion": 2, "challenger": 3}

    promote = load_text(
        tmp_path,
        "version: 1\ndefaults:\n  mirror_stages_to_aliases: {Production: champion, Staging: challenger}\n"
        "models:\n  m:\n    versions:\n      - {version: 3, stage: Production}\n",
    )
    fake.calls.clear()
    assert apply_plan(make_plan(promote, fake, None, NOW), fake, AuditContext(), NOW).ok
    assert dict(fake.models["m"].aliases) == {"champion": 3}  # nothing in Staging any more
    assert fake.disagreements == [], fake.disagreements
    assert fake.gaps == ["m: Staging left without a holder"]  # the file empties Staging
    assert plan(promote, fake.read(), NOW).is_empty


def test_applied_transitions_record_when_the_stage_was_entered(tmp_path: Path) -> None:
    fake = FakeRegistry(models={"m": ModelState(name="m", versions=(VersionState(1, "None"),))})
    staged = load_text(
        tmp_path, "version: 1\nmodels:\n  m:\n    versions:\n      - {version: 1, stage: Staging}\n"
    )
    apply_plan(make_plan(staged, fake, None, NOW), fake, AuditContext(), NOW)
    v1 = fake.models["m"].version(1)
    assert v1 is not None
    assert read_record(v1.tags)["stage_since"] == "2026-11-27T12:00:00+00:00"

    soak = "version: 1\ndefaults:\n  policy: {min_time_in_staging: 2h}\nmodels:\n  m:\n    versions:\n      - {version: 1, stage: Production}\n"
    desired = load_text(tmp_path, soak)
    early = plan(desired, fake.read(), NOW + timedelta(hours=2) - timedelta(seconds=1))
    assert early.blocked["m"] == (
        "policy min_time_in_staging: v1 has been in Staging for 1h 59m 59s, needs 2h (1s to go)",
    )
    assert not plan(desired, fake.read(), NOW + timedelta(hours=2, seconds=1)).blocked


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "versions:\n      - {version: 1, stage: Staging, deleted: true}",
            "a deleted version cannot be in Staging",
        ),
        (
            "mirror_stages_to_aliases: {Production: champion}\n    aliases: {champion: 1}",
            "both mirrored from Production and declared",
        ),
        ("policy: {min_time_in_staging: soon}", "is not a duration"),
    ],
)
def test_lifecycle_keys_are_validated(tmp_path: Path, text: str, message: str) -> None:
    from mlflow_gitops.errors import SpecError

    with pytest.raises(SpecError, match=message):
        load_text(tmp_path, f"version: 1\nmodels:\n  m:\n    {text}\n")
