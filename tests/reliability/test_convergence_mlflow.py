"""The convergence property against a real MLflow registry (sqlite), with fewer examples: the live
state is made with MlflowClient, the tool applies through MlflowRegistry, and every write is
followed by a read of the model to check the intermediate state."""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings

from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.reconcile import apply_plan, make_plan
from mlflow_gitops.spec.load import load
from tests.reliability.invariants import Watch, convergence_problems, watched
from tests.reliability.scenarios import ModelDecl, Scenario, VersionDecl, scenarios
from tests.reliability.test_convergence import AUDIT, NOW

pytestmark = [pytest.mark.integration]

EXAMPLES = 5
_counter = itertools.count()

# a rich case always runs first: a swap, an archived holder, an alias move, tags and a new version
RICH = Scenario(
    observed={
        "m0": ModelState(
            name="m0",
            description="old text",
            tags={"team": "rides", "task": "regression"},
            aliases={"champion": 1, "challenger": 2},
            versions=(
                VersionState(1, "Production", source="file:///models/m0/v1", tags={"owner": "a"}),
                VersionState(2, "Staging", source="file:///models/m0/v2", description="two"),
                VersionState(3, "Production", source="file:///models/m0/v3"),
            ),
        )
    },
    desired={
        "m0": ModelDecl(
            versions=(
                VersionDecl(1, "version", "Staging", tags={"owner": None}),
                VersionDecl(2, "source", "Production", description="GBR, 50 trees"),
                VersionDecl("new0", "source", "None", tags={"team": "search"}),
            ),
            description="Trip duration.",
            tags={"task": None, "owner": "alice"},
            aliases={"champion": 2, "challenger": "new0", "shadow": 1},
        )
    },
    run_refs=False,
)


@pytest.fixture(scope="module", autouse=True)
def _restore_mlflow_uris() -> Iterator[None]:
    """MlflowRegistry sets MLflow's tracking and registry URIs (globals and environment
    variables); put them back so later tests do not inherit this module's registry."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved_env = {k: os.environ.get(k) for k in keys}
    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    yield
    for key, value in saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    tracking_utils._tracking_uri, registry_utils._registry_uri = saved


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("convergence-mlflow")
    return f"sqlite:///{folder}/mlflow.db"


def seed(uri: str, scenario: Scenario) -> Scenario:
    """Create the scenario's live state in MLflow; the scenario with the state MLflow reports."""
    from mlflow import MlflowClient

    from mlflow_gitops.registry.client import MlflowRegistry

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stages are deprecated since MLflow 2.9
        for name, model in scenario.observed.items():
            client.create_registered_model(
                name, tags=dict(model.tags), description=model.description
            )
            for v in model.versions:
                created = client.create_model_version(
                    name, v.source, tags=dict(v.tags), description=v.description
                )
                assert int(created.version) == v.version
                if v.stage != "None":
                    client.transition_model_version_stage(
                        name, created.version, v.stage, archive_existing_versions=False
                    )
            for alias, number in model.aliases.items():
                client.set_registered_model_alias(name, alias, str(number))
    live = MlflowRegistry(uri).read(list(scenario.observed))
    return replace(scenario, observed=dict(live.models), parallelism=1)


def check_real(uri: str, scenario: Scenario, folder: Path) -> None:
    from mlflow_gitops.registry.client import MlflowRegistry

    scenario = seed(uri, scenario.renamed(f"r{next(_counter)}-"))
    file = folder / "registry.yaml"
    file.write_text(scenario.yaml(), encoding="utf-8")
    registry = MlflowRegistry(uri)
    expected = {name: scenario.expect(name) for name in scenario.desired}
    watch = Watch(scenario, expected, before=dict(scenario.observed))
    desired = load(file)
    planned = make_plan(desired, registry)
    assert set(planned.plan.blocked) == {n for n, e in expected.items() if e.blocked}

    def after(call: tuple[str, ...]) -> None:
        watch.after_write(call, MlflowRegistry(uri).read([call[1]]).models.get(call[1]))

    watched(registry, after)
    result = apply_plan(planned, registry, AUDIT, NOW, parallelism=1)
    assert result.ok, [s for s in result.steps if s.status == "failed"]
    assert watch.violations == []
    names: Any = sorted(set(scenario.observed) | set(scenario.desired))
    assert convergence_problems(scenario, MlflowRegistry(uri).read(names)) == []
    again = make_plan(desired, MlflowRegistry(uri)).plan
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
