"""MLflow 2.x servers: the test harness itself, the reader's filters and what each server
generation costs in REST calls, a read/plan/apply on MLflow 2.9, and refusals that are errors
(a refusal the reader does not know: tests/registry/test_client_filters.py)."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlflow_gitops.registry.mlflow import reads, search
from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry
from tests.cli_runner import run_cli
from tests.github.fake_github import TOKEN, FakeGitHub, serve
from tests.github.harness import PR, REPOSITORY, make_runner, pull_request_event
from tests.helpers import write_spec
from tests.integration.mlflow_helpers import MLFLOW2_PYTHONS, client, log_regressor, register
from tests.mlflow2 import mlflow2_bin, mlflow2_python, mlflow29_bin, mlflow29_python
from tests.servers import (
    MlflowServer,
    drop_postgres_database,
    postgres_database,
    this_mlflow,
)

pytestmark = [pytest.mark.integration]

# server -> (its mlflow executable, the Python that logs runs to it (None: ours), its backend)
GENERATIONS: dict[str, tuple[Callable[[], str], Callable[[], str] | None, str]] = {
    "3": (this_mlflow, None, "sqlite"),
    "2.22": (mlflow2_bin, mlflow2_python, "sqlite"),
    "2.22-postgres": (mlflow2_bin, mlflow2_python, "postgres"),
    "2.9": (mlflow29_bin, mlflow29_python, "sqlite"),
}
# REST calls of MlflowRegistry.read for N managed models (one version each) on a server holding
# 200 models: (first read in the process, every later read). Names `cost-000`..`cost-199`. The
# models and versions searches are sent at once, so an MLflow 2.x server refuses `name IN (...)`
# twice in the first read of a process (2 calls), then is read with `name = '...'` or one scan.
COSTS = {
    "3": {1: (2, 2), 10: (2, 2), 200: (4, 4)},
    "2.22": {1: (4, 2), 10: (4, 2), 200: (4, 2)},
    "2.22-postgres": {1: (4, 2), 10: (4, 2), 200: (4, 2)},
    "2.9": {1: (4, 2), 10: (4, 2), 200: (4, 2)},
}


SEED_COST_MODELS = """
import sys
from mlflow import MlflowClient

client = MlflowClient(tracking_uri=sys.argv[1], registry_uri=sys.argv[1])
for i in range(200):
    client.create_registered_model(f"cost-{i:03d}")
    client.create_model_version(f"cost-{i:03d}", f"s3://cost/{i}", await_creation_for=0)
"""


@pytest.fixture(autouse=True)
def _no_ambient_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module", params=list(GENERATIONS))
def generation_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, MlflowServer]]:
    """A fresh server of each generation, holding the 200 `cost-` models."""
    mlflow_bin, python, kind = GENERATIONS[request.param]
    work = tmp_path_factory.mktemp(f"server-{request.param}")
    backend, database = f"sqlite:///{work}/mlflow.db", None
    if kind == "postgres":
        created = postgres_database()
        if created is None:
            pytest.fail("PostgreSQL on 127.0.0.1:5432 could not be reached (see tests/servers.py)")
        database, backend = created
    # written straight into the database by that MLflow before the server starts: 400 requests
    # through the server would take minutes on a loaded machine
    seeded = subprocess.run(
        [python() if python else sys.executable, "-c", SEED_COST_MODELS, backend],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    if seeded.returncode != 0:
        if database is not None:
            drop_postgres_database(database)
        pytest.fail(f"seeding {backend} with the cost- models failed:\n{seeded.stderr[-3000:]}")
    server = MlflowServer(backend, work, mlflow_bin=mlflow_bin())
    if python is not None:
        MLFLOW2_PYTHONS[server.uri] = python()
    try:
        yield request.param, server
    finally:
        MLFLOW2_PYTHONS.pop(server.uri, None)
        server.stop()
        if database is not None:
            drop_postgres_database(database)


def test_mlflow2_server_is_2_22_and_takes_runs_and_registrations(
    mlflow2_server: MlflowServer, model_name: str
) -> None:
    with urllib.request.urlopen(f"{mlflow2_server.uri}/version", timeout=10) as answer:
        assert answer.read().decode().startswith("2.22.")
    run = log_regressor(mlflow2_server.uri, "tree", seed=3)
    # registered by the MLflow 3 client, as the tool registers `run:` entries
    assert register(mlflow2_server.uri, model_name, run.run_id) == 1
    version = client(mlflow2_server.uri).get_model_version(model_name, "1")
    assert version.run_id == run.run_id
    assert version.source.endswith(f"{run.run_id}/artifacts/model")


@pytest.mark.parametrize("managed", [1, 10, 200])
def test_read_costs_per_server_generation(
    generation_server: tuple[str, MlflowServer], managed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    generation, server = generation_server
    monkeypatch.setattr(reads, "_NO_NAME_IN", {})  # a new process: the generation is unknown
    names = [f"cost-{i:03d}" for i in range(managed)]
    calls = []
    for _ in range(2):
        registry = MlflowRegistry(server.uri)
        state = registry.read(names)
        assert sorted(state.models) == names
        assert all([v.version for v in m.versions] == [1] for m in state.models.values())
        calls.append(registry.calls)
    assert tuple(calls) == COSTS[generation][managed]


def test_the_rest_read_decodes_what_mlflows_client_decodes(
    generation_server: tuple[str, MlflowServer], model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader decodes a REST server's JSON itself (registry/mlflow/search.py): every field
    of every model and version is what MLflow's own client makes of the same server's answers."""
    _, server = generation_server
    monkeypatch.setattr(reads, "_NO_NAME_IN", {})
    c = client(server.uri)
    c.create_registered_model(
        model_name, tags={"team": "rides", "empty": ""}, description="durée du trajet ✓"
    )
    for i in range(1, 4):
        c.create_model_version(
            model_name, f"s3://bucket/{i}", tags={"k": f"v{i}"},
            description=f"version {i}" if i > 1 else None, await_creation_for=0,
        )  # fmt: skip
    c.transition_model_version_stage(model_name, "2", "Production")
    c.set_registered_model_alias(model_name, "champion", "2")
    names = [model_name, "cost-007", "no-such-model"]

    decoded = [MlflowRegistry(server.uri).read(names), MlflowRegistry(server.uri).read(None)]
    for module in (reads, search):  # MLflow's client: protobuf messages, then entities
        monkeypatch.setattr(module, "is_rest", lambda store: False)
    by_client = [MlflowRegistry(server.uri).read(names), MlflowRegistry(server.uri).read(None)]

    assert decoded == by_client
    model = decoded[0].models[model_name]
    assert (model.description, dict(model.tags)) == (
        "durée du trajet ✓",
        {"team": "rides", "empty": ""},
    )
    assert dict(model.aliases) == {"champion": 2}
    assert [
        (v.version, v.stage, v.source, v.description, dict(v.tags)) for v in model.versions
    ] == [
        (1, "None", "s3://bucket/1", "", {"k": "v1"}),
        (2, "Production", "s3://bucket/2", "version 2", {"k": "v2"}),
        (3, "None", "s3://bucket/3", "version 3", {"k": "v3"}),
    ]
    assert sorted(decoded[0].models) == sorted([model_name, "cost-007"])
    assert len(decoded[1].models) >= 201


def test_every_command_on_every_generation(
    generation_server: tuple[str, MlflowServer],
    model_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """import, plan, apply (stages, alias, tag, `run:`), propose, history, rollback."""
    _, server = generation_server
    uri = ["--tracking-uri", server.uri]
    experiment = f"every-{model_name}"
    first = log_regressor(server.uri, "linear", 0, experiment)
    second = log_regressor(server.uri, "tree", 1, experiment)
    assert register(server.uri, model_name, first.run_id) == 1
    spec = write_spec(
        tmp_path,
        f"""
        version: 1
        models:
          {model_name}:
            tags: {{team: rides}}
            aliases: {{champion: 1}}
            versions:
              - {{version: 1, stage: Production}}
              - {{run: {second.run_id}, stage: Staging}}
        """,
    )
    applied = run_cli(capsys, "apply", str(spec), *uri, "--actor", "alice")
    assert applied.code == 0, applied
    assert run_cli(capsys, "plan", str(spec), *uri, "--detailed-exitcode").code == 0
    c = client(server.uri)
    versions = {int(v.version): v for v in c.search_model_versions(f"name = '{model_name}'")}
    assert {n: v.current_stage for n, v in versions.items()} == {1: "Production", 2: "Staging"}
    assert versions[2].run_id == second.run_id
    assert c.get_registered_model(model_name).aliases == {"champion": "1"}
    out = tmp_path / "imported.yaml"
    assert run_cli(capsys, "import", "--model", model_name, "--out", str(out), *uri).code == 0
    assert run_cli(capsys, "plan", str(out), *uri, "--detailed-exitcode").code == 0

    # propose the registered run: its version, not a second registration
    promoted = write_spec(
        tmp_path, f"version: 1\nmodels:\n  {model_name}:\n    versions:\n      - version: 1\n"
    )
    proposed = run_cli(
        capsys, "propose", model_name, "--experiment", experiment, "--run", second.run_id,
        "--stage", "Production", "--file", str(promoted), *uri,
    )  # fmt: skip
    assert proposed.code == 0, proposed
    assert promoted.read_text().endswith("- version: 2\n        stage: Production\n")
    assert run_cli(capsys, "apply", str(promoted), *uri, "--actor", "bob").code == 0
    stages = {
        int(v.version): v.current_stage for v in c.search_model_versions(f"name = '{model_name}'")
    }
    assert stages == {1: "Archived", 2: "Production"}  # archive_previous

    hist = run_cli(capsys, "history", model_name, *uri)
    assert hist.code == 0, hist
    assert "Staging -> Production" in hist.out
    rolled = run_cli(capsys, "rollback", model_name, "--file", str(promoted), *uri)
    assert rolled.code == 0, rolled
    assert run_cli(capsys, "apply", str(promoted), *uri).code == 0
    stages = {
        int(v.version): v.current_stage for v in c.search_model_versions(f"name = '{model_name}'")
    }
    assert stages == {1: "Production", 2: "Archived"}


def test_comment_posts_the_plan_of_an_mlflow2_registry(
    mlflow2_server: MlflowServer,
    model_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = log_regressor(mlflow2_server.uri)
    assert register(mlflow2_server.uri, model_name, run.run_id) == 1
    github = FakeGitHub()
    api = serve(github)
    try:
        runner = make_runner(tmp_path, pull_request_event(), {}, github.url)
        spec = f"version: 1\nmodels:\n  {model_name}:\n    versions:\n      - {{version: 1, stage: Staging}}\n"
        (runner.workspace / "registry.yaml").write_text(spec, encoding="utf-8")
        for key, value in {
            **runner.env,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "MLFLOW_TRACKING_URI": mlflow2_server.uri,
        }.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(runner.workspace)
        result = run_cli(capsys, "comment", "registry.yaml", "--detailed-exitcode")
    finally:
        api.shutdown()
    assert result.code == 2, result  # changes to review
    (comment,) = github.ours(REPOSITORY, PR)
    assert "| v1 stage | None | Staging |" in comment["body"]


def test_a_run_without_a_model_at_that_path_is_a_clear_error_on_mlflow2(
    mlflow2_server: MlflowServer,
    model_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = log_regressor(mlflow2_server.uri)
    spec = write_spec(
        tmp_path,
        f"version: 1\nmodels:\n  {model_name}:\n    versions:\n      - run: {run.run_id}/elsewhere\n",
    )
    result = run_cli(capsys, "apply", str(spec), "--tracking-uri", mlflow2_server.uri)
    assert result.code == 1
    said = result.out + result.err  # the apply's result lists the failed registration
    assert "the run has no model (MLmodel) at that artifact path" in said
    assert "check the path after the run id" in said
    assert "<!doctype html>" not in said
