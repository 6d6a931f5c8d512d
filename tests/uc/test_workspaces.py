"""Two fake workspaces in one profile file, each with its own tokens and its own tracking server;
and a metastore seeded with many models, read page by page through MLflow's client."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.uc.harness import UcWorld, apply_env, uc_world

pytestmark = [pytest.mark.integration]


def test_each_workspace_gets_its_own_token(uc_two_env: UcWorld) -> None:
    prod, dev = uc_two_env.workspace("prod"), uc_two_env.workspace("dev")
    marks = {"prod": prod.mark(), "dev": dev.mark()}
    uc_two_env.client("prod").create_registered_model("prod.ml.m")
    uc_two_env.client("dev").create_registered_model("dev.ml.m")
    uc_two_env.client("dev").create_experiment("/Shared/dev-only")

    for name, ws in (("prod", prod), ("dev", dev)):
        sent = [r for r in ws.since(marks[name]) if r.token is not None]
        assert sent
        assert {r.token for r in sent} == {uc_two_env.tokens[(name, "alice")]}
    # separate metastores and separate tracking servers
    assert [m.name for m in uc_two_env.client("prod").search_registered_models()] == ["prod.ml.m"]
    assert [m.name for m in uc_two_env.client("dev").search_registered_models()] == ["dev.ml.m"]
    assert uc_two_env.client("dev").get_experiment_by_name("/Shared/dev-only") is not None
    assert uc_two_env.client("prod").get_experiment_by_name("/Shared/dev-only") is None


def test_a_token_of_another_workspace_is_refused(uc_two_env: UcWorld) -> None:
    import requests

    answer = requests.get(
        f"{uc_two_env.workspace('prod').url}/api/2.0/mlflow/unity-catalog/registered-models/get",
        params={"name": "prod.ml.m"},
        headers={"Authorization": f"Bearer {uc_two_env.tokens[('dev', 'alice')]}"},
        timeout=30,
    )
    assert answer.status_code == 401
    assert answer.json()["error_code"] == "UNAUTHENTICATED"


def test_experiment_names_are_workspace_paths(uc_two_env: UcWorld) -> None:
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as e:
        uc_two_env.client("prod").create_experiment("gitops-audit")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "absolute path within the Databricks workspace" in e.value.message
    assert uc_two_env.client("prod").create_experiment("/Shared/gitops-audit")


def test_seeded_models_are_read_page_by_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """500 models seeded in memory; with an injected latency every request still succeeds, and
    the client reads them in pages of at most 1000 (UC's cap) following next_page_token."""
    with uc_world(tmp_path, tracking=False, latency_s=0.01) as world:
        apply_env(world, monkeypatch)
        names = world.metastore().seed(
            [f"prod.ml.model_{i:03d}" for i in range(500)],
            owner=world.user("alice"),
            versions=3,
            aliases={"champion": 2, "challenger": 3},
            tags={"team": "bench"},
        )
        client = world.client()
        mark = world.workspace().mark()
        first = client.search_registered_models(max_results=200)
        second = client.search_registered_models(max_results=200, page_token=first.token)
        third = client.search_registered_models(max_results=200, page_token=second.token)
        assert [len(first), len(second), len(third)] == [200, 200, 100]
        assert not third.token  # the last page: no next_page_token
        assert [m.name for m in (*first, *second, *third)] == sorted(names)
        model = client.get_registered_model("prod.ml.model_123")
        assert model.aliases == {"champion": "2", "challenger": "3"}
        assert model.tags == {"team": "bench"}
        versions = client.search_model_versions("name='prod.ml.model_123'")
        assert sorted(v.version for v in versions) == ["1", "2", "3"]
        assert {v.status for v in versions} == {"READY"}
        uc_calls = world.workspace().since(mark, uc_only=True)
        assert len(uc_calls) == 5
        assert all(r.status == 200 for r in world.workspace().since(mark))
