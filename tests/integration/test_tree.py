"""A tree of files over two real registries: dev (`mlflow server` on SQLite) and prod (`mlflow
server` on PostgreSQL). A real scikit-learn model with its DictVectorizer is trained into dev, the
tree promotes it to prod with copy_from, and the copy loads from prod and predicts exactly as the
source does. Partial plans read only what they select; each registry gets its own credentials."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.auth.harness import AuthServer, start_auth_server
from tests.cli_runner import run_cli
from tests.integration.mlflow_helpers import client
from tests.servers import MlflowServer, free_port
from tests.two_registries import PREPROCESSOR, Trained, features, predict, train_into

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = """
version: 1
registries:
  dev:
    tracking_uri_env: TREE_DEV_URI
  prod:
    tracking_uri_env: TREE_PROD_URI
default_registry: dev
include:
  - teams/*/*.yaml
"""

# dev and prod on two basic-auth servers, each with its own user's variables
AUTH_ROOT = """
version: 1
registries:
  dev:
    tracking_uri_env: A_URI
    username_env: A_USER
    password_env: A_PASSWORD
  prod:
    tracking_uri_env: B_URI
    username_env: B_USER
    password_env: B_PASSWORD
default_registry: dev
include: [teams/*.yaml]
"""


@pytest.fixture(scope="module")
def trained(dev: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The demo's gradient-boosting run (model, DictVectorizer, params, metrics) in dev."""
    return train_into(dev.uri, "nyc-taxi-regressor", tmp_path_factory.mktemp("data"))


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def tree(folder: Path, model: str, version: int, prod_model: str) -> None:
    write(folder, "registry.yaml", ROOT)
    write(
        folder,
        "teams/a/dev.yaml",
        f"""
        version: 1
        registry: dev
        models:
          {model}:
            versions:
              - {{version: {version}, stage: Staging}}
        """,
    )
    write(
        folder,
        "teams/a/prod.yaml",
        f"""
        version: 1
        registry: prod
        models:
          {prod_model}:
            description: served by the rides team
            versions:
              - copy_from: dev:{model}/{version}
                stage: Production
        """,
    )


def predictions(uri: str, model: str, version: int, valid: Path, tmp: Path) -> Any:
    """models:/<model>/<version> from `uri` on the validation month, through the DictVectorizer
    of the version's own run, downloaded from the same server."""
    run_id = client(uri).get_model_version(model, str(version)).run_id
    return predict(uri, model, version, features(uri, run_id, valid, tmp))


def in_tree(folder: Path, dev: MlflowServer, prod: MlflowServer, mp: pytest.MonkeyPatch) -> None:
    """Run from the tree's folder, its registries' variables naming the two servers and MLflow's
    own URI unset (a named registry never uses it)."""
    mp.chdir(folder)
    mp.setenv("TREE_DEV_URI", dev.uri)
    mp.setenv("TREE_PROD_URI", prod.uri)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_a_tree_promotes_a_model_from_dev_to_prod(
    dev: MlflowServer,
    prod: MlflowServer,
    trained: Trained,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prod_model = f"taxi-prod-{uuid.uuid4().hex[:6]}"
    tree(tmp_path, trained.model, trained.version, prod_model)
    in_tree(tmp_path, dev, prod, monkeypatch)

    planned = run_cli(capsys, "plan", "registry.yaml", "--no-color")
    assert planned.code == 0, planned.err
    assert f"Registry dev ({dev.uri})\n  teams/a/dev.yaml\n    {trained.model}\n" in planned.out
    assert f"Registry prod ({prod.uri})\n  teams/a/prod.yaml\n    {prod_model}\n" in planned.out
    copy_line = f"+ new version: copy dev:{trained.model}/{trained.version} -> prod"
    assert copy_line in planned.out
    assert "in registries dev, prod." in planned.out

    applied = run_cli(capsys, "apply", "registry.yaml", "--no-color")
    assert applied.code == 0, applied.out + applied.err
    assert f"Registry dev ({dev.uri}): applied" in applied.out
    assert f"Registry prod ({prod.uri}): applied" in applied.out

    again = run_cli(capsys, "plan", "registry.yaml", "--no-color", "--detailed-exitcode")
    assert again.code == 0, again.out
    assert "No changes. Every registry matches the files." in again.out

    [copy] = client(prod.uri).search_model_versions(f"name = '{prod_model}'")
    assert copy.current_stage == "Production"
    assert client(dev.uri).get_model_version(trained.model, str(trained.version)).current_stage == (
        "Staging"
    )
    source = predictions(dev.uri, trained.model, trained.version, trained.valid, tmp_path / "s")
    copied = predictions(prod.uri, prod_model, int(copy.version), trained.valid, tmp_path / "c")
    assert source.shape == copied.shape
    assert np.array_equal(source, copied)  # exactly, row for row

    history = run_cli(capsys, "history", prod_model, "--tracking-uri", prod.uri)
    assert history.code == 0, history.err
    assert f"copy dev:{trained.model}/{trained.version} -> prod" in history.out


def test_a_model_declared_twice_names_both_places(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree(tmp_path, "m", 1, "served")
    write(
        tmp_path,
        "teams/b/prod.yaml",
        """
        version: 1
        registry: prod
        models:
          served:
            description: again
        """,
    )
    monkeypatch.chdir(tmp_path)
    unreachable = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("TREE_DEV_URI", unreachable)
    monkeypatch.setenv("TREE_PROD_URI", unreachable)
    failed = run_cli(capsys, "plan", "registry.yaml")
    assert failed.code == 1
    assert (
        "teams/b/prod.yaml:4:3: models.served: model 'served' (registry 'prod') is declared "
        "twice: at teams/a/prod.yaml:4:3 and at teams/b/prod.yaml:4:3"
    ) in failed.err


def test_a_partial_plan_reads_only_what_it_selects(
    dev: MlflowServer,
    trained: Trained,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tree(tmp_path, trained.model, trained.version, "never-read")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TREE_DEV_URI", dev.uri)
    # nothing listens there: a request to prod would fail the plan
    monkeypatch.setenv("TREE_PROD_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

    whole = run_cli(capsys, "plan", "registry.yaml")
    assert whole.code == 1  # the proof that prod is out of reach
    assert "cannot read the registry at http://127.0.0.1:" in whole.err

    for selection in (["--registry", "dev"], ["--model", trained.model]):
        partial = run_cli(capsys, "plan", "registry.yaml", "--no-color", *selection)
        assert partial.code == 0, partial.err
        assert f"Partial plan ({' '.join(selection)}): the rest of the tree was neither read " in (
            partial.out
        )
        assert "Registry prod" not in partial.out

    unknown = run_cli(capsys, "plan", "registry.yaml", "--registry", "qa")
    assert unknown.code == 1
    assert "unknown registry 'qa' (--registry); registry.yaml declares: dev, prod" in unknown.err


HOOK = """
from mlflow_gitops.demo.taxi import prepare as _prepare

def prepare(df):
    return _prepare(df)
"""


def gated_prod_file(prod_model: str, holder: str, candidate: str | None, rmse: str) -> str:
    """prod's file: the holder copied into Production; with a candidate, the candidate copied and
    promoted in the same change (the holder archived), behind an evaluate gate on Production."""
    if candidate is None:
        versions = f"""
              - copy_from: {holder}
                stage: Production"""
    else:
        versions = f"""
              - copy_from: {holder}
                stage: Archived
              - copy_from: {candidate}
                stage: Production"""
    return f"""
        version: 1
        registry: prod
        models:
          {prod_model}:
            versions:{versions}
            gates:
              Production:
                - evaluate:
                    data: data/valid.parquet
                    prepare: features:prepare
                    preprocessor: {PREPROCESSOR}
                    metrics:
                      rmse: {rmse}
        """


def test_a_gated_copy_is_evaluated_on_its_source_against_the_destination_holder(
    dev: MlflowServer,
    prod: MlflowServer,
    trained: Trained,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """copy_from and the gated stage in ONE change: the gate evaluates the source version, read
    from dev, against prod's current holder; a failed gate blocks the model, so nothing is
    copied (the copy is part of the model's changes); a passed gate copies and promotes."""
    from mlflow_gitops.demo.train import register_runs

    ranked = f"ranked-{uuid.uuid4().hex[:6]}"
    worst, best = (max(trained.runs, key=lambda r: r.rmse), min(trained.runs, key=lambda r: r.rmse))
    assert worst.rmse > best.rmse
    register_runs([worst, best], ranked, dev.uri)  # v1 the worst, v2 the best
    prod_model = f"gated-{uuid.uuid4().hex[:6]}"
    holder, candidate = f"dev:{ranked}/1", f"dev:{ranked}/2"
    write(tmp_path, "registry.yaml", ROOT)
    write(tmp_path, "teams/a/features.py", HOOK)
    (tmp_path / "teams/a/data").mkdir(parents=True)
    (tmp_path / "teams/a/data/valid.parquet").write_bytes(trained.valid.read_bytes())
    in_tree(tmp_path, dev, prod, monkeypatch)
    # prod's holder: the worst run, copied and promoted while prod held nothing (no baseline)
    write(
        tmp_path, "teams/a/prod.yaml", gated_prod_file(prod_model, holder, None, "{threshold: 100}")
    )
    first = run_cli(capsys, "apply", "registry.yaml", "--registry", "prod", "--no-color")
    assert first.code == 0, first.out + first.err
    [held] = client(prod.uri).search_model_versions(f"name = '{prod_model}'")
    assert held.current_stage == "Production"

    # a gate the source cannot pass: blocked, and neither the copy nor any stage is applied
    write(
        tmp_path,
        "teams/a/prod.yaml",
        gated_prod_file(prod_model, holder, candidate, "{threshold: 0.001}"),
    )
    refused = run_cli(capsys, "apply", "registry.yaml", "--registry", "prod", "--no-color")
    label = f"new version (copy_from {candidate})"
    said = refused.out + refused.err
    assert f"gate evaluate for Production failed on {label}: rmse" in said, said
    assert refused.code == 3  # blocked by a gate
    assert len(client(prod.uri).search_model_versions(f"name = '{prod_model}'")) == 1
    assert client(prod.uri).get_model_version(prod_model, "1").current_stage == "Production"

    # not worse than prod's holder (the worst run): the plan evaluates the source with v1 as
    # the baseline; apply copies it and promotes the copy, archiving the holder
    write(
        tmp_path,
        "teams/a/prod.yaml",
        gated_prod_file(prod_model, holder, candidate, "{min_absolute_change: 0}"),
    )
    planned = run_cli(
        capsys, "plan", "registry.yaml", "--registry", "prod", "--no-color", "--format", "json"
    )
    assert planned.code == 0, planned.err
    [gate] = [g for r in json.loads(planned.out)["registries"] for g in r["gates"]]
    assert (gate["version"], gate["verdict"], gate["baseline_version"]) == (label, "pass", 1)
    values = {c["name"]: (c["candidate"], c["baseline"]) for c in gate["checks"]}
    assert values["rmse"] == pytest.approx((best.rmse, worst.rmse), rel=1e-6)
    applied = run_cli(capsys, "apply", "registry.yaml", "--registry", "prod", "--no-color")
    assert applied.code == 0, applied.out + applied.err
    stages = {
        int(v.version): v.current_stage
        for v in client(prod.uri).search_model_versions(f"name = '{prod_model}'")
    }
    assert stages == {1: "Archived", 2: "Production"}
    copy = client(prod.uri).get_model_version(prod_model, "2")
    assert copy.tags["mlflow_gitops.copied_from.version"] == "2"
    again = run_cli(capsys, "plan", "registry.yaml", "--registry", "prod", "--detailed-exitcode")
    assert again.code == 0, again.out


@pytest.fixture(scope="module")
def two_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthServer, AuthServer]]:
    a = start_auth_server(tmp_path_factory.mktemp("auth-dev"), "MANAGE")
    try:
        b = start_auth_server(tmp_path_factory.mktemp("auth-prod"), "MANAGE")
    except BaseException:
        a.server.stop()
        raise
    try:
        yield a, b
    finally:
        a.server.stop()
        b.server.stop()


def own_users(
    two_auth: tuple[AuthServer, AuthServer], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, tuple[str, str]]:
    """A new user on each server only (a credential sent to the other server gets a 401), in
    the variables AUTH_ROOT names; MLflow's own variables name a user neither server knows, so
    anything sent with them fails. The users by variable prefix (A: dev, B: prod)."""
    servers = dict(zip("AB", two_auth, strict=True))
    users = {p: (f"{prefix}-{p.lower()}-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex) for p in servers}
    for p, (user, password) in users.items():
        status = servers[p].rest(
            "admin", "POST", "/api/2.0/mlflow/users/create",
            {"username": user, "password": password},
        )  # fmt: skip
        assert status == 200
        monkeypatch.setenv(f"{p}_URI", servers[p].uri)
        monkeypatch.setenv(f"{p}_USER", user)
        monkeypatch.setenv(f"{p}_PASSWORD", password)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "nobody")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-a-password")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return users


def test_each_registry_gets_its_own_credentials(
    two_auth: tuple[AuthServer, AuthServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dev, prod = two_auth
    users = own_users(two_auth, "bot", monkeypatch)
    name = f"cred-{uuid.uuid4().hex[:6]}"
    write(tmp_path, "registry.yaml", AUTH_ROOT)
    for registry in ("dev", "prod"):
        write(
            tmp_path,
            f"teams/{registry}.yaml",
            f"""
            version: 1
            registry: {registry}
            models:
              {name}:
                description: owned by {registry}
            """,
        )
    monkeypatch.chdir(tmp_path)

    applied = run_cli(capsys, "apply", "registry.yaml", "--no-color")
    assert applied.code == 0, applied.out + applied.err
    for server, registry in ((dev, "dev"), (prod, "prod")):
        with server.as_user("admin"):
            model = server.client().get_registered_model(name)
        assert model.description == f"owned by {registry}"
    for _, password in users.values():
        assert password not in applied.out + applied.err
    again = run_cli(capsys, "plan", "registry.yaml", "--no-color")
    assert "No changes. Every registry matches the files." in again.out


def test_a_gate_reads_the_source_of_a_copy_with_the_source_registrys_credentials(
    two_auth: tuple[AuthServer, AuthServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gate in prod on a copy of a dev version not made yet reads the version, its run and its
    files from dev with dev's own user; MLflow's variables name a user neither server knows."""
    import mlflow
    from sklearn.linear_model import LinearRegression

    dev, prod = two_auth
    users = own_users(two_auth, "gate", monkeypatch)
    source = f"gated-src-{uuid.uuid4().hex[:6]}"
    with dev.as_user("admin"):
        mlflow.set_tracking_uri(dev.uri)
        mlflow.set_registry_uri(dev.uri)
        # the Default experiment: the module's training left another server's experiment active
        with mlflow.start_run(experiment_id="0") as run:
            mlflow.log_metric("rmse", 1.5)
            model = LinearRegression().fit(np.array([[0.0], [1.0], [2.0]]), [0.0, 1.0, 2.0])
            mlflow.sklearn.log_model(model, name="model")
        mlflow.register_model(f"runs:/{run.info.run_id}/model", source)
    write(tmp_path, "registry.yaml", AUTH_ROOT)
    served = f"gated-{uuid.uuid4().hex[:6]}"
    write(
        tmp_path,
        "teams/prod.yaml",
        f"""
        version: 1
        registry: prod
        models:
          {served}:
            versions:
              - copy_from: dev:{source}/1
                stage: Production
            gates:
              Production:
                - {{metric: rmse, max: 2.0}}
                - {{max_size_mb: 5}}
        """,
    )
    monkeypatch.chdir(tmp_path)

    planned = run_cli(capsys, "plan", "registry.yaml", "--no-color", "--format", "json")
    assert planned.code == 0, planned.err
    gates = [g for r in json.loads(planned.out)["registries"] for g in r["gates"]]
    verdicts = {g["gate"]: (g["verdict"], g["message"]) for g in gates}
    assert verdicts == {
        "metric": ("pass", "passed"),
        "max_size_mb": ("pass", "passed"),
    }, verdicts
    applied = run_cli(capsys, "apply", "registry.yaml", "--no-color")
    assert applied.code == 0, applied.out + applied.err
    with prod.as_user("admin"):
        [copy] = prod.client().search_model_versions(f"name = '{served}'")
    assert copy.current_stage == "Production"
    for _, password in users.values():
        assert password not in planned.out + planned.err + applied.out + applied.err


def test_a_saved_plan_of_one_registry_applies_with_that_registrys_credentials(
    two_auth: tuple[AuthServer, AuthServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """plan --registry prod --out, then apply the saved plan: prod's own user writes it (not
    MLflow's variables), and MLFLOW_TRACKING_URI naming dev does not redirect it."""
    dev, prod = two_auth
    users = own_users(two_auth, "saved", monkeypatch)
    name = f"saved-{uuid.uuid4().hex[:6]}"
    write(tmp_path, "registry.yaml", AUTH_ROOT)
    write(
        tmp_path,
        "teams/prod.yaml",
        f"""
        version: 1
        registry: prod
        models:
          {name}:
            description: saved for prod
        """,
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dev.uri)

    planned = run_cli(capsys, "plan", "registry.yaml", "--registry", "prod", "--out", "p.json")
    assert planned.code == 0, planned.out + planned.err
    applied = run_cli(capsys, "apply", "p.json", "--no-color")
    assert applied.code == 0, applied.out + applied.err
    with prod.as_user("admin"):
        model = prod.client().get_registered_model(name)
    assert model.description == "saved for prod"
    for _, password in users.values():
        assert password not in planned.out + planned.err + applied.out + applied.err
