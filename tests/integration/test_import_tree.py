"""`import --tree` against two real `mlflow server`s (dev and prod): the command, run as a child
process, writes a file per registry (and, with --split, per model), and the imported tree plans
empty in both registries: `plan --detailed-exitcode` on the root exits 0, and make_plan per
file says the same."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from mlflow_gitops.reconcile import make_plan
from mlflow_gitops.reconcile.connect import open_registry
from mlflow_gitops.spec.tree import load_tree
from tests.cli_runner import run_process
from tests.integration.mlflow_helpers import client, log_regressor, register
from tests.servers import MlflowServer

NOW = datetime(2026, 11, 27, tzinfo=UTC)  # the one clock of these plans

pytestmark = [pytest.mark.integration]

ROOT = """\
version: 1
registries:
  dev:
    tracking_uri_env: DEV_MLFLOW_TRACKING_URI
  prod:
    tracking_uri_env: PROD_MLFLOW_TRACKING_URI
default_registry: dev
models: {}
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two registries of their own (nothing else writes to them): dev holds two models, prod one;
    stages, aliases, tags and descriptions set by hand, as a team would have them."""
    started: list[MlflowServer] = []
    try:
        for name in ("dev", "prod"):
            work = tmp_path_factory.mktemp(f"import-{name}")
            started.append(MlflowServer(f"sqlite:///{work}/mlflow.db", work))
        dev, prod = (s.uri for s in started)
        runs = [log_regressor(dev, "linear"), log_regressor(dev, "tree", seed=1)]
        for run in runs:
            register(dev, "trip-eta", run.run_id)
        register(dev, "fare-estimator", runs[0].run_id)
        c = client(dev)
        c.transition_model_version_stage("trip-eta", "1", "Archived")
        c.transition_model_version_stage("trip-eta", "2", "Staging")
        c.set_registered_model_alias("trip-eta", "challenger", "2")
        c.set_registered_model_tag("trip-eta", "team", "rides")
        c.set_model_version_tag("trip-eta", "2", "model_type", "tree")
        c.update_registered_model("trip-eta", "Trip duration in minutes.")
        register(prod, "trip-eta", log_regressor(prod, "linear", seed=2).run_id)
        p = client(prod)
        p.transition_model_version_stage("trip-eta", "1", "Production")
        p.update_model_version("trip-eta", "1", "Serving since November.")
        yield {"dev": dev, "prod": prod}
    finally:
        for server in started:
            server.stop()


def _env(servers: dict[str, str]) -> dict[str, str]:
    return {"DEV_MLFLOW_TRACKING_URI": servers["dev"], "PROD_MLFLOW_TRACKING_URI": servers["prod"]}


def _plans_empty(root: Path, servers: dict[str, str]) -> None:
    tree = load_tree(root)
    for name, uri in servers.items():
        registry = open_registry(uri)
        files = tree.files_in(name)
        assert [m.name for m in tree.models_in(name)], name
        for loaded in files:
            planned = make_plan(loaded, registry, None, NOW)
            assert planned.plan.is_empty, (loaded.name, planned.plan.changes)


@pytest.mark.parametrize("split", [False, True], ids=["per-registry", "per-model"])
def test_the_imported_tree_plans_empty_in_both_registries(
    servers: dict[str, str], tmp_path: Path, split: bool
) -> None:
    root = tmp_path / "registry.yaml"
    root.write_text(ROOT, encoding="utf-8")

    args = ["import", "--tree", "--root", str(root), *(["--split"] if split else [])]
    result = run_process(*args, env=_env(servers))

    assert result.code == 0, result.err
    assert "Wrote 3 models in" in result.err
    pattern = "registries/*/*.yaml" if split else "registries/*.yaml"
    assert f"Add to the include: of {root}:\ninclude:\n  - {pattern}\n" in result.err
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("registries/**/*"))
    if split:
        assert written == [
            "registries/dev",
            "registries/dev/fare-estimator.yaml",
            "registries/dev/trip-eta.yaml",
            "registries/prod",
            "registries/prod/trip-eta.yaml",
        ]
        prod = tmp_path / "registries" / "prod" / "trip-eta.yaml"
    else:
        assert written == ["registries/dev.yaml", "registries/prod.yaml"]
        prod = tmp_path / "registries" / "prod.yaml"
    prod_doc = yaml.safe_load(prod.read_text(encoding="utf-8"))
    assert prod_doc["registry"] == "prod"
    assert prod_doc["models"]["trip-eta"]["versions"] == [
        {"version": 1, "stage": "Production", "description": "Serving since November."}
    ]
    assert f"# Imported from registry 'prod' ({servers['prod']})" in prod.read_text()

    root.write_text(ROOT.replace("models: {}", f"include: ['{pattern}']\nmodels: {{}}"))
    plan = run_process("plan", str(root), "--detailed-exitcode", env=_env(servers))
    assert plan.code == 0, plan.out + plan.err
    assert "No changes. Every registry matches the files." in plan.out
    _plans_empty(root, servers)


def test_one_registry_can_be_imported_alone(servers: dict[str, str], tmp_path: Path) -> None:
    root = tmp_path / "registry.yaml"
    root.write_text(ROOT, encoding="utf-8")
    env = {"PROD_MLFLOW_TRACKING_URI": servers["prod"]}  # dev's variable is not even set

    result = run_process("import", "--tree", "--root", str(root), "--registry", "prod", env=env)

    assert result.code == 0, result.err
    assert sorted(p.name for p in (tmp_path / "registries").iterdir()) == ["prod.yaml"]
