"""What a long-lived registry meets: the history block grows with every apply, and a
PostgreSQL-backed MLflow stores a version description in varchar(5000). (This found that the
history block was never trimmed: apply 66 of 80 failed; fixed in c62595e.)"""

from __future__ import annotations

from pathlib import Path

from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.reconcile import apply_plan, make_plan
from tests.helpers import load_text
from tests.reliability.harness import AUDIT, NOW
from tests.reliability.invariants import MAX_DESCRIPTION, LimitedRegistry

FLIPS = 80  # two promotions a day for six weeks

SPEC = """
version: 1
models:
  m:
    versions:
      - {{version: 1, stage: {first}}}
      - {{version: 2, stage: {second}}}
"""


def test_eighty_promotions_fit_in_the_description_column(tmp_path: Path) -> None:
    registry = LimitedRegistry(
        models={
            "m": ModelState(
                name="m",
                versions=(
                    VersionState(1, "Production", description="Linear regression."),
                    VersionState(2, "Staging"),
                ),
            )
        }
    )
    stages = ("Production", "Staging")
    for flip in range(FLIPS):
        first, second = stages[(flip + 1) % 2], stages[flip % 2]
        desired = load_text(tmp_path, SPEC.format(first=first, second=second))
        result = apply_plan(make_plan(desired, registry, None, NOW), registry, AUDIT, NOW)
        failed = [s.detail for s in result.steps if s.status == "failed"]
        assert not failed, f"apply {flip + 1} of {FLIPS}: {failed}"
    for version in registry.models["m"].versions:
        assert len(version.description) <= MAX_DESCRIPTION
        assert version.description.startswith("Linear regression.") or version.version == 2
