"""Unity Catalog end to end, through the tool's CLI: the fakes of two Databricks workspaces
(tests/uc/harness.py: Unity Catalog routes, a real `mlflow server` per workspace as its tracking
API, the S3 server as managed storage) and a self-hosted `mlflow server` as dev. Every scenario
runs `validate`, `import`, `plan` or `apply` as a user would (in this process through
tests/cli_runner.run_cli; the refused apply as a child process, for its real exit code) and
checks the registry after, in the fake's metastore or through MLflow's client:

1. import of a UC registry writes aliases and no stage, and plan on it is empty;
2. aliases, tags and descriptions applied from a root with `registries:` (tracking_uri
   databricks://prod, registry URI by default databricks-uc://prod); the audit run lands in the
   workspace's tracking server under /Shared;
3. a `stage:` in a UC file refused by validate, at its line, the hint naming aliases;
4. an unsigned model refused by plan at its entry's line, nothing registered;
5. copy_from a self-hosted dev (a real scikit-learn model logged with a signature) into
   prod.ml.m with alias champion: `models:/prod.ml.m@champion` predicts as the source, the
   source's files are all still there, and a second plan is empty;
6. a catalog-to-catalog copy (dev.ml.m/1 into prod.ml.promoted), and a second plan is empty;
7. a non-owner's alias change refused with UC's privilege named, nothing applied;
8. two workspaces in one tree, each with its own host and token variables: each workspace
   received only its own token;
9. a version registered from a run (a scikit-learn model logged with a signature in the
   workspace's tracking server) with alias champion: READY, its run id and source right,
   `models:/prod.ml.registered@champion` predicts as the run's model, a second plan is empty;
10. `deleted: true` on a version an alias names is blocked (exit 3, the alias named); with the
   alias moved in the file, the same apply moves it and deletes the version; plan is then empty."""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlflow_gitops.record import COPY_RUN_TAG
from tests.cli_runner import Outcome, run_cli, run_process
from tests.integration.mlflow_helpers import client
from tests.servers import MlflowServer
from tests.uc.harness import UcWorld

pytestmark = [pytest.mark.integration]

X = np.arange(30, dtype=float).reshape(10, 3)
AUDIT = "/Shared/mlflow-gitops-audit"


@dataclass(frozen=True)
class Logged:
    run_id: str
    model_uri: str
    model_id: str
    predictions: Any


def log_model(tracking: str, experiment: str, *, signed: bool = True) -> Logged:
    """A real scikit-learn regressor logged at `tracking`, with a signature or without."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(X, X @ np.array([1.0, -2.0, 0.5]) + 3.0)
    predictions = model.predict(X)
    signature = infer_signature(X, predictions) if signed else None
    mlflow.set_tracking_uri(tracking)
    try:
        mlflow.set_experiment(experiment)
        with mlflow.start_run() as run:
            info = mlflow.sklearn.log_model(model, name="model", signature=signature)
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    return Logged(run.info.run_id, info.model_uri, info.model_id, predictions)


def write(folder: Path, files: dict[str, str]) -> Path:
    """Write the files (dedented) into `folder`; the first one's path is returned."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return folder / next(iter(files))


def ok(outcome: Outcome) -> Outcome:
    assert outcome.code == 0, outcome.out + outcome.err
    return outcome


def hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


ROOT = """
version: 1
registries:
  prod:
    tracking_uri: databricks://prod
default_registry: prod
include: [prod.yaml]
"""


@pytest.fixture
def world(uc_two_env: UcWorld) -> UcWorld:
    """The module's two workspaces (prod and dev), their variables set for the test."""
    return uc_two_env


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A self-hosted dev registry: `mlflow server` on SQLite, its artifacts on local disk."""
    folder = tmp_path_factory.mktemp("dev-server")
    server = MlflowServer(f"sqlite:///{folder}/mlflow.db", folder, workers=1)
    yield server
    server.stop()


def load_from_uc(world: UcWorld, uri: str) -> Any:
    """`mlflow.pyfunc.load_model(uri)` with the workspace's URIs as MLflow's globals, as a user's
    notebook would load the champion; the globals are unset afterwards."""
    import mlflow

    tracking, registry = world.uris()
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)
    try:
        return mlflow.pyfunc.load_model(uri)
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def test_1_import_writes_aliases_and_plan_on_it_is_empty(
    world: UcWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world.metastore().seed(
        ["prod.ml.imported"],
        owner=world.user("alice"),
        versions=2,
        aliases={"champion": 2, "challenger": 1},
        tags={"team": "rides"},
    )
    out = tmp_path / "registry.yaml"
    ok(
        run_cli(
            capsys, "import", "--tracking-uri", "databricks://prod",
            "-m", "prod.ml.imported", "--out", str(out),
        )
    )  # fmt: skip
    text = out.read_text(encoding="utf-8")
    assert "prod.ml.imported" in text
    assert "champion: 2" in text
    assert "challenger: 1" in text
    assert "stage" not in text
    planned = run_cli(
        capsys, "plan", str(out), "--tracking-uri", "databricks://prod", "--detailed-exitcode"
    )
    assert planned.code == 0, planned.out + planned.err
    assert world.metastore().model("prod.ml.imported").aliases == {"champion": 2, "challenger": 1}


def test_2_aliases_tags_and_descriptions_applied_audit_in_the_workspace(
    world: UcWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world.metastore().seed(
        ["prod.ml.served"], owner=world.user("alice"), versions=2, aliases={"champion": 1}
    )
    root = write(
        tmp_path,
        {
            "registry.yaml": ROOT,
            "prod.yaml": """
                version: 1
                registry: prod
                models:
                  prod.ml.served:
                    description: Predicts trip duration.
                    tags: {team: rides}
                    aliases: {champion: 2, challenger: 1}
                    versions:
                      - version: 1
                        description: the first fit
                        tags: {model_type: linear}
                      - version: 2
                """,
        },
    )
    ok(run_cli(capsys, "validate", str(root)))
    applied = ok(run_cli(capsys, "apply", str(root), "--actor", "alice", "--commit", "1a2b3c4d"))
    assert AUDIT in applied.out

    model = world.metastore().model("prod.ml.served")
    assert model.aliases == {"champion": 2, "challenger": 1}
    user_tags = {k: v for k, v in model.tags.items() if not k.startswith("mlflow_gitops.")}
    assert user_tags == {"team": "rides"}  # beside the tool's own record of the change
    assert model.description.startswith("Predicts trip duration.")
    assert model.versions[1].tags["model_type"] == "linear"
    assert model.versions[1].description.startswith("the first fit")
    # the audit record in the workspace's tracking server, under /Shared; no lock model in UC
    tracking = world.client()
    experiment = tracking.get_experiment_by_name(AUDIT)
    assert experiment is not None
    [record] = tracking.search_runs([experiment.experiment_id])
    assert record.data.tags["mlflow_gitops.commit"] == "1a2b3c4d"
    assert all(name.startswith("prod.ml.") for name in world.metastore().models)
    again = run_cli(capsys, "plan", str(root), "--detailed-exitcode")
    assert again.code == 0, again.out + again.err


def test_3_a_stage_in_a_uc_file_is_refused_by_validate(
    world: UcWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write(
        tmp_path,
        {
            "registry.yaml": ROOT,
            "prod.yaml": """
                version: 1
                registry: prod
                models:
                  prod.ml.staged:
                    versions:
                      - version: 1
                        stage: Production
                """,
        },
    )
    mark = world.workspace().mark()
    refused = run_cli(capsys, "validate", str(root))
    assert refused.code != 0
    text = refused.out + refused.err
    assert f"{tmp_path / 'prod.yaml'}:7" in text
    assert "alias" in text
    assert world.workspace().since(mark) == []  # validate never contacts a registry


def test_4_an_unsigned_model_is_refused_by_plan_at_its_entry_line(
    world: UcWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unsigned = log_model(world.uris()[0], "/Shared/scenarios", signed=False)
    root = write(
        tmp_path,
        {
            "registry.yaml": ROOT,
            "prod.yaml": f"""
                version: 1
                registry: prod
                models:
                  prod.ml.unsigned:
                    versions:
                      - run: {unsigned.run_id}/model
                """,
        },
    )
    refused = run_cli(capsys, "plan", str(root))
    assert refused.code != 0
    text = refused.out + refused.err
    assert f"{tmp_path / 'prod.yaml'}:6" in text
    assert unsigned.run_id in text
    assert "without a signature" in text
    assert "prod.ml.unsigned" not in world.metastore().models  # nothing registered


def test_5_copy_from_a_self_hosted_dev_into_uc_predicts_as_the_source(
    world: UcWorld,
    dev_server: MlflowServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    source = log_model(dev_server.uri, "taxi")
    dev = client(dev_server.uri)
    dev.create_registered_model("nyc-taxi-regressor")
    dev.create_model_version(
        "nyc-taxi-regressor", source.model_uri, run_id=source.run_id, model_id=source.model_id
    )
    files = dev_server.workdir / "artifacts"
    before = hashes(files)
    assert any(name.endswith("MLmodel") for name in before)
    monkeypatch.setenv("SCENARIO_DEV_URI", dev_server.uri)
    root = write(
        tmp_path,
        {
            "registry.yaml": """
                version: 1
                registries:
                  dev:
                    tracking_uri_env: SCENARIO_DEV_URI
                  prod:
                    tracking_uri: databricks://prod
                default_registry: prod
                include: [prod.yaml]
                """,
            "prod.yaml": """
                version: 1
                registry: prod
                models:
                  prod.ml.m:
                    aliases: {champion: 'copy_from:dev:nyc-taxi-regressor/1'}
                    versions:
                      - copy_from: dev:nyc-taxi-regressor/1
                """,
        },
    )
    ok(run_cli(capsys, "apply", str(root), "--actor", "alice", "--commit", "5e6f7a8b"))

    assert hashes(files) == before  # every file of the source still there, byte for byte
    model = world.metastore().model("prod.ml.m")
    assert list(model.versions) == [1]
    assert model.aliases == {"champion": 1}
    assert world.client().get_model_version("prod.ml.m", "1").tags[COPY_RUN_TAG] == source.run_id
    loaded = load_from_uc(world, "models:/prod.ml.m@champion")
    np.testing.assert_allclose(np.asarray(loaded.predict(X)), source.predictions)
    again = run_cli(capsys, "plan", str(root), "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert list(world.metastore().model("prod.ml.m").versions) == [1]
    assert hashes(files) == before


def test_6_a_catalog_to_catalog_copy_is_made_once(
    world: UcWorld,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow

    monkeypatch.chdir(tmp_path)  # where MLflow's default tracking URI would make mlflow.db

    logged = log_model(world.uris()[0], "/Shared/scenarios")
    mlflow.set_tracking_uri(world.uris()[0])  # the UC store looks the logged model up there
    try:
        uc = world.client()
        uc.create_registered_model("dev.ml.m")
        uc.create_model_version(
            "dev.ml.m", source=logged.model_uri, run_id=logged.run_id, model_id=logged.model_id
        )
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    root = write(
        tmp_path,
        {
            "registry.yaml": ROOT,
            "prod.yaml": """
                version: 1
                registry: prod
                models:
                  prod.ml.promoted:
                    aliases: {champion: 'copy_from:dev.ml.m/1'}
                    versions:
                      - copy_from: dev.ml.m/1
                """,
        },
    )
    ok(run_cli(capsys, "apply", str(root), "--actor", "alice", "--commit", "9a8b7c6d"))
    model = world.metastore().model("prod.ml.promoted")
    assert list(model.versions) == [1]
    assert model.aliases == {"champion": 1}
    # the copy keeps its link to the logged model, looked up in the workspace, not in a
    # sqlite:///mlflow.db that MLflow's default tracking URI would leave in the working folder
    assert model.versions[1].model_id == logged.model_id
    assert not (tmp_path / "mlflow.db").exists()
    assert list(world.metastore().model("dev.ml.m").versions) == [1]  # the source untouched
    again = run_cli(capsys, "plan", str(root), "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    ok(run_cli(capsys, "apply", str(root), "--actor", "alice", "--commit", "9a8b7c6e"))
    assert list(world.metastore().model("prod.ml.promoted").versions) == [1]  # not copied twice


def test_7_a_non_owners_alias_change_is_refused_with_the_privilege_named(
    world: UcWorld, tmp_path: Path
) -> None:
    world.metastore().seed(
        ["prod.ml.guarded"], owner=world.user("alice"), versions=2, aliases={"champion": 1}
    )
    root = write(
        tmp_path,
        {
            "registry.yaml": ROOT.replace("databricks://prod", "databricks://prod-bob"),
            "prod.yaml": """
                version: 1
                registry: prod
                models:
                  prod.ml.guarded:
                    aliases: {champion: 2}
                """,
        },
    )
    refused = run_process("apply", str(root), "--actor", "bob", "--commit", "0badc0de")
    assert refused.code == 1, refused.out + refused.err
    text = refused.out + refused.err
    assert "prod.ml.guarded" in text
    assert "MANAGE" in text
    assert "champion" in text
    assert world.metastore().model("prod.ml.guarded").aliases == {"champion": 1}
    assert world.tokens[("prod", "bob")] not in text


def test_8_two_workspaces_in_one_tree_each_with_its_own_token(
    world: UcWorld,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice = world.user("alice")
    world.metastore("prod").seed(["prod.ml.both"], owner=alice, versions=1)
    world.metastore("dev").seed(["dev.ml.both"], owner=alice, versions=1)
    for ws in ("prod", "dev"):
        monkeypatch.setenv(f"{ws.upper()}_DATABRICKS_HOST", world.workspace(ws).url)
        monkeypatch.setenv(f"{ws.upper()}_DATABRICKS_TOKEN", world.tokens[(ws, "alice")])
    root = write(
        tmp_path,
        {
            "registry.yaml": """
                version: 1
                registries:
                  prod:
                    tracking_uri: databricks
                    host_env: PROD_DATABRICKS_HOST
                    token_env: PROD_DATABRICKS_TOKEN
                  dev:
                    tracking_uri: databricks
                    host_env: DEV_DATABRICKS_HOST
                    token_env: DEV_DATABRICKS_TOKEN
                default_registry: prod
                include: [prod.yaml, dev.yaml]
                """,
            "prod.yaml": """
                version: 1
                registry: prod
                models:
                  prod.ml.both:
                    tags: {workspace: prod}
                """,
            "dev.yaml": """
                version: 1
                registry: dev
                models:
                  dev.ml.both:
                    tags: {workspace: dev}
                """,
        },
    )
    marks = {ws: world.workspace(ws).mark() for ws in ("prod", "dev")}
    applied = ok(run_cli(capsys, "apply", str(root), "--actor", "alice", "--commit", "2b3c4d5e"))
    for ws in ("prod", "dev"):
        tags = world.metastore(ws).model(f"{ws}.ml.both").tags
        assert tags["workspace"] == ws
    for ws in ("prod", "dev"):
        sent = {r.token for r in world.workspace(ws).since(marks[ws]) if r.token is not None}
        assert sent == {world.tokens[(ws, "alice")]}, ws
        # each workspace's audit record in its own tracking server
        assert world.client(ws).get_experiment_by_name(AUDIT) is not None
    for token in world.tokens.values():
        assert token not in applied.out + applied.err


def test_9_a_version_registered_from_a_run_with_an_alias_predicts_as_the_run(
    world: UcWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    logged = log_model(world.uris()[0], "/Shared/scenarios")
    root = write(
        tmp_path,
        {
            "registry.yaml": ROOT,
            "prod.yaml": f"""
                version: 1
                registry: prod
                models:
                  prod.ml.registered:
                    aliases: {{champion: 'run:{logged.run_id}'}}
                    versions:
                      - run: {logged.run_id}/model
                """,
        },
    )
    ok(run_cli(capsys, "apply", str(root), "--actor", "alice", "--commit", "3c4d5e6f"))

    model = world.metastore().model("prod.ml.registered")
    assert list(model.versions) == [1]
    version = world.client().get_model_version("prod.ml.registered", "1")
    assert version.status == "READY"
    assert version.run_id == logged.run_id
    assert logged.model_id in version.source  # the logged model's files, as MLflow 3 registers
    assert model.aliases == {"champion": 1}
    loaded = load_from_uc(world, "models:/prod.ml.registered@champion")
    np.testing.assert_allclose(np.asarray(loaded.predict(X)), logged.predictions)
    again = run_cli(capsys, "plan", str(root), "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert list(world.metastore().model("prod.ml.registered").versions) == [1]  # not twice


def test_10_a_version_an_alias_names_is_not_deleted_until_the_alias_moves(
    world: UcWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world.metastore().seed(
        ["prod.ml.pruned"], owner=world.user("alice"), versions=2, aliases={"champion": 1}
    )
    model_file = """
        version: 1
        registry: prod
        models:
          prod.ml.pruned:
            aliases: {{champion: {champion}}}
            versions:
              - version: 1
                deleted: true
              - version: 2
        """
    root = write(tmp_path, {"registry.yaml": ROOT, "prod.yaml": model_file.format(champion=1)})
    refused = run_cli(capsys, "apply", str(root), "--actor", "alice", "--commit", "4d5e6f7a")
    assert refused.code == 3, refused.out + refused.err  # blocked
    text = refused.out + refused.err
    assert "prod.ml.pruned" in text
    assert "deleting v1 refused: alias champion names it; move the alias first" in text
    model = world.metastore().model("prod.ml.pruned")
    assert sorted(model.versions) == [1, 2]  # nothing deleted
    assert model.aliases == {"champion": 1}

    write(tmp_path, {"prod.yaml": model_file.format(champion=2)})
    ok(run_cli(capsys, "apply", str(root), "--actor", "alice", "--commit", "4d5e6f7b"))
    model = world.metastore().model("prod.ml.pruned")
    assert list(model.versions) == [2]
    assert model.aliases == {"champion": 2}
    again = run_cli(capsys, "plan", str(root), "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
