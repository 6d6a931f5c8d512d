"""Planner cases as data: each file in cases/ holds desired, observed and the expected plan."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml

from mlflow_gitops.errors import SpecError
from mlflow_gitops.observed import RegistryState
from mlflow_gitops.plan.planner import plan
from mlflow_gitops.render.text import render_plan
from tests.fakes import observed_from_data
from tests.helpers import load_text

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_case(case: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(case.read_text(encoding="utf-8"))
    desired = load_text(tmp_path, data["desired"])
    observed = RegistryState(models=observed_from_data(data.get("observed") or {}))
    if "error" in data:
        with pytest.raises(SpecError) as err:
            plan(desired, observed)
        assert data["error"] in err.value.render()
        return
    now = datetime.fromisoformat(data["now"]) if "now" in data else None
    result = plan(desired, observed, now)
    assert render_plan(result).strip() == data["expected"].strip()
    # the plan is deterministic: the same inputs give the same plan
    assert plan(desired, observed, now) == result
