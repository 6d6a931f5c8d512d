"""The convergence property against a real MLflow registry (sqlite), with fewer examples: the live
state is made with MlflowClient, the tool applies through MlflowRegistry, and every write is
followed by a read of the model to check the intermediate state."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings

from mlflow_gitops.reconcile import apply_plan, make_plan
from mlflow_gitops.spec.load import load
from tests.reliability.harness import AUDIT, NOW, RICH, seed
from tests.reliability.invariants import Watch, convergence_problems, watched
from tests.reliability.scenarios import Scenario, scenarios

pytestmark = [pytest.mark.integration]

EXAMPLES = 5
_counter = itertools.count()


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("convergence-mlflow")
    return f"sqlite:///{folder}/mlflow.db"


def check_real(uri: str, scenario: Scenario, folder: Path) -> None:
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry

    scenario = seed(uri, scenario.renamed(f"r{next(_counter)}-"))
    file = folder / "registry.yaml"
    file.write_text(scenario.yaml(), encoding="utf-8")
    registry = MlflowRegistry(uri)
    expected = {name: scenario.expect(name) for name in scenario.desired}
    watch = Watch(scenario, expected, before=dict(scenario.observed))
    desired = load(file)
    planned = make_plan(desired, registry, None, NOW)
    assert set(planned.plan.blocked) == {n for n, e in expected.items() if e.blocked}

    def after(call: tuple[str, ...]) -> None:
        watch.after_write(call, MlflowRegistry(uri).read([call[1]]).models.get(call[1]))

    watched(registry, after)
    result = apply_plan(planned, registry, AUDIT, NOW, parallelism=1)
    assert result.ok, [s for s in result.steps if s.status == "failed"]
    assert watch.violations == []
    names: Any = sorted(set(scenario.observed) | set(scenario.desired))
    assert convergence_problems(scenario, MlflowRegistry(uri).read(names)) == []
    again = make_plan(desired, MlflowRegistry(uri), None, NOW).plan
    assert set(again.models) <= set(planned.plan.blocked), again.changes


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("convergence-mlflow-files")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@example(scenario=RICH)
@given(scenario=scenarios(names=("m0", "m1"), run_refs=False, max_versions=4))
def test_apply_converges_on_a_real_registry(uri: str, folder: Path, scenario: Scenario) -> None:
    check_real(uri, scenario, folder)
