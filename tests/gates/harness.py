"""What the gate tests on real logged models share: the evaluation hook and gate, the registry
with the course's three regressors (see conftest.py's `trained`), and planning with gates."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlflow_gitops.reconcile import make_plan
from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry
from mlflow_gitops.registry.mlflow.evidence import MlflowEvidence
from mlflow_gitops.spec.load import load
from tests.helpers import write_spec
from tests.integration.mlflow_helpers import client

NOW = datetime(2026, 11, 27, tzinfo=UTC)
HOOK = """
from mlflow_gitops.demo.taxi import prepare as _prepare

def prepare(df):
    return _prepare(df)

def broken(df):
    raise ValueError("no such column: fare")
"""


@dataclass(frozen=True)
class Trained:
    uri: str
    folder: Path
    runs: list[str]  # linear, gradient boosting, random forest


def registered(trained: Trained, name: str, promote: dict[int, str]) -> None:
    import mlflow

    from mlflow_gitops.demo.train import register_runs

    runs = [type("R", (), {"run_id": r, "model_uri": f"runs:/{r}/model"})() for r in trained.runs]
    register_runs(runs, name, trained.uri)  # type: ignore[arg-type]
    mlflow.set_tracking_uri(trained.uri)
    for version, stage in promote.items():
        client(trained.uri).transition_model_version_stage(name, str(version), stage)


def spec(trained: Trained, name: str, body: str) -> str:
    text = (
        f"version: 1\nmodels:\n  {name}:\n"
        + textwrap.indent(textwrap.dedent(body).strip(), "    ")
        + "\n"
    )
    path = write_spec(trained.folder, text, f"{name}.yaml")
    return str(path)


EVALUATE = """
- evaluate:
    data: data/green_tripdata_2021-03.parquet
    prepare: features:prepare
    preprocessor: preprocessor/preprocessor.b
    metrics:
      rmse: {min_absolute_change: 0}
      mae: {threshold: 100}
"""


def plan_with_gates(trained: Trained, path: str) -> tuple[object, MlflowEvidence]:
    evidence = MlflowEvidence(trained.uri)
    loaded = load(path)
    return make_plan(loaded, MlflowRegistry(trained.uri), evidence, NOW).plan, evidence
