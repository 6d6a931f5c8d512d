"""The MLflow adapter on Unity Catalog, through MLflow's own `databricks-uc` client against the
fake (tests/uc/fake_uc.py): reads per declared model (2 + versions calls each), stage None, no
stage transitions, a 403 that names UC's privilege, and a plan that refuses to register a model
logged without a signature, at the entry's line."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlflow_gitops.errors import PermissionDenied, RegistryError, SpecError
from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry
from tests.uc.adapter import open_uc_adapter
from tests.uc.harness import UcWorld

pytestmark = [pytest.mark.integration]

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def open_uc(world: UcWorld, user: str = "alice") -> MlflowRegistry:
    """The adapter for `user` on the fake's `prod` workspace."""
    return open_uc_adapter(*world.uris("prod", user))


@pytest.fixture
def world(uc_env: UcWorld) -> Iterator[UcWorld]:
    """The module's fake workspace, emptied of models after each test."""
    yield uc_env
    store = uc_env.metastore("prod")
    with store.lock:
        store.models.clear()
        store.grants.clear()


def test_reads_declared_models_one_by_one_with_tags_aliases_and_no_stage(world: UcWorld) -> None:
    alice = world.user("alice")
    store = world.metastore("prod")
    store.seed(
        ["prod.ml.a", "prod.ml.b"],
        owner=alice,
        versions=2,
        aliases={"champion": 2},
        tags={"t": "1"},
    )
    store.seed(["prod.ml.other"], owner=alice, versions=1)
    store.model("prod.ml.a").versions[1].tags["k"] = "v"
    adapter = open_uc(world)
    mark = world.workspace().mark()
    state = adapter.read(["prod.ml.a", "prod.ml.b", "prod.ml.absent"])
    assert sorted(state.models) == ["prod.ml.a", "prod.ml.b"]
    a = state.models["prod.ml.a"]
    assert a.aliases == {"champion": 2}
    assert a.tags == {"t": "1"}
    assert [v.version for v in a.versions] == [1, 2]
    assert a.versions[0].tags == {"k": "v"}  # version tags: get_model_version (search drops them)
    assert {v.stage for m in state.models.values() for v in m.versions} == {"None"}
    requests = world.workspace().since(mark, uc_only=True)
    # 2 + V calls a model (absent: 1), never a filtered model search, never a version search
    # with more than one condition
    assert len(requests) == (2 + 2) * 2 + 1 == adapter.calls
    assert not [r for r in requests if r.path.endswith("registered-models/search")]


def test_import_of_a_whole_uc_registry_pages_the_unfiltered_search(world: UcWorld) -> None:
    names = [f"prod.ml.m{i:02d}" for i in range(3)]
    world.metastore("prod").seed(names, owner=world.user("alice"), versions=1)
    adapter = open_uc(world)
    state = adapter.read(None)
    assert sorted(state.models) == names
    assert adapter.calls == 1 + 3 * 3


def test_read_threads_bound_is_checked(world: UcWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    world.metastore("prod").seed(["prod.ml.a"], owner=world.user("alice"), versions=1)
    adapter = open_uc(world)
    monkeypatch.setenv("MLFLOW_GITOPS_UC_READ_THREADS", "zero")
    with pytest.raises(RegistryError, match="MLFLOW_GITOPS_UC_READ_THREADS"):
        adapter.read(["prod.ml.a"])
    monkeypatch.setenv("MLFLOW_GITOPS_UC_READ_THREADS", "1")
    assert list(adapter.read(["prod.ml.a"]).models) == ["prod.ml.a"]


def test_no_stage_transition_reaches_uc(world: UcWorld) -> None:
    world.metastore("prod").seed(["prod.ml.a"], owner=world.user("alice"), versions=1)
    adapter = open_uc(world)
    mark = world.workspace().mark()
    with pytest.raises(RegistryError, match="Unity Catalog has no stages"):
        adapter.transition_stage("prod.ml.a", 1, "Production")
    assert world.workspace().since(mark) == []


@pytest.mark.parametrize(
    ("write", "privilege"),
    [
        (lambda r: r.set_alias("prod.ml.a", "champion", 1), "ownership of the model or the MANAGE"),
        (lambda r: r.delete_alias("prod.ml.a", "champion"), "ownership of the model or the MANAGE"),
        (lambda r: r.set_model_description("prod.ml.a", "x"), "ownership of the model or the MAN"),
    ],
    ids=["set alias", "delete alias", "set description"],
)
def test_a_non_owner_is_refused_with_the_uc_privilege_named(
    world: UcWorld, write: object, privilege: str
) -> None:
    world.metastore("prod").seed(
        ["prod.ml.a"], owner=world.user("alice"), versions=1, aliases={"champion": 1}
    )
    bob = open_uc(world, "bob")
    with pytest.raises(PermissionDenied) as refused:
        write(bob)  # type: ignore[operator]
    text = f"{refused.value.message} {refused.value.hint}"
    assert "403" in text
    assert "prod.ml.a" in text
    assert privilege in text
    assert "USE CATALOG on 'prod'" in text
    assert "USE SCHEMA on 'prod.ml'" in text
    assert world.metastore("prod").model("prod.ml.a").aliases == {"champion": 1}


def _log_run(world: UcWorld, *, signed: bool) -> str:
    """A real scikit-learn model logged in the workspace's tracking server, with a signature or
    without."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LinearRegression

    tracking, _ = world.uris("prod")
    mlflow.set_tracking_uri(tracking)
    try:
        mlflow.set_experiment("/Shared/uc-adapter-tests")
        with mlflow.start_run() as run:
            x = np.array([[1.0], [2.0]])
            model = LinearRegression().fit(x, np.array([1.0, 2.0]))
            example = x if signed else None
            mlflow.sklearn.log_model(model, name="model", input_example=example)
        return str(run.info.run_id)
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


def test_plan_refuses_an_unsigned_model_at_the_entry_line(world: UcWorld, tmp_path: Path) -> None:
    from mlflow_gitops.reconcile.planning import make_plan
    from mlflow_gitops.spec.load import load

    run_id = _log_run(world, signed=False)
    signed = _log_run(world, signed=True)
    world.metastore("prod").seed(["prod.ml.a"], owner=world.user("alice"), versions=1)
    path = tmp_path / "registry.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            models:
              prod.ml.a:
                versions:
                  - run: {run_id}/model
                  - run: {signed}
            """
        )
    )
    adapter = open_uc(world)
    with pytest.raises(SpecError) as refused:
        make_plan(load(path), adapter, None, NOW)
    (issue,) = refused.value.issues
    assert (issue.line, issue.path) == (5, "models.prod.ml.a.versions[0].run")
    assert run_id in issue.message
    assert "'model'" in issue.message
    assert "without a signature" in issue.message
    assert "Unity Catalog" in issue.message
    assert len(world.metastore("prod").model("prod.ml.a").versions) == 1  # nothing registered
    assert os.environ.get("MLFLOW_TRACKING_URI") is None


def test_a_non_owner_apply_stops_at_the_first_refused_write_and_says_what_was_not_done(
    world: UcWorld, tmp_path: Path
) -> None:
    from mlflow_gitops.apply import apply
    from mlflow_gitops.audit import AuditContext
    from mlflow_gitops.reconcile.planning import make_plan
    from mlflow_gitops.spec.load import load

    world.metastore("prod").seed(
        ["prod.ml.a"], owner=world.user("alice"), versions=2, aliases={"champion": 1}
    )
    path = tmp_path / "registry.yaml"
    path.write_text(
        "version: 1\nmodels:\n  prod.ml.a:\n    tags: {team: rides}\n    aliases: {champion: 2}\n"
    )
    bob = open_uc(world, "bob")
    planned = make_plan(load(path), bob, None, NOW)
    audit = AuditContext(commit="abc1234", actor="bob")
    result = apply(planned.plan, planned.observed, bob, audit, NOW)
    statuses = [(getattr(s.what, "kind", s.what), s.status) for s in result.steps]
    assert statuses == [("set_model_tag", "failed"), ("set_alias", "not applied")]
    assert "APPLY TAG" in result.steps[0].detail
    assert "prod.ml.a" in result.steps[0].detail
    model = world.metastore("prod").model("prod.ml.a")
    assert model.tags == {}
    assert model.aliases == {"champion": 1}
