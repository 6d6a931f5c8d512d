"""A saved plan records which registry it was made against, without credentials, and is applied
only there: never to a default, never to another registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_gitops.errors import GitopsError, StalePlanError
from mlflow_gitops.plan.changes import Plan
from mlflow_gitops.plan.saved import SavedPlan, saved_plan_uri
from mlflow_gitops.settings import registry_identity


@pytest.mark.parametrize(
    ("uri", "identity"),
    [
        ("http://bob:pw@127.0.0.1:5000/", "http://127.0.0.1:5000"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("HTTPS://Mlflow.Example/prefix/?x=1", "https://mlflow.example:443/prefix"),
        ("https://tok3n@mlflow.example:443", "https://mlflow.example:443"),
        ("postgresql+psycopg2://u:p@db:5432/mlflow", "postgresql+psycopg2://db:5432/mlflow"),
        ("sqlite:////tmp/a/../b.db", "sqlite:////tmp/b.db"),
        ("databricks://profile", "databricks://profile"),
    ],
)
def test_identity_has_no_credentials(uri: str, identity: str) -> None:
    assert registry_identity(uri) == identity


def _saved(registry: str | None, uri: str | None) -> SavedPlan:
    return SavedPlan(plan=Plan(), tracking_uri=uri, file=None, registry=registry)


def test_the_stored_uri_is_used_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    saved = _saved("sqlite:////r/mlflow.db", "sqlite:////r/mlflow.db")
    assert saved_plan_uri(saved, None) == "sqlite:////r/mlflow.db"


def test_no_uri_and_none_stored_is_refused_never_a_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(GitopsError) as refused:
        saved_plan_uri(_saved("http://h:5000", None), None)
    assert "made against http://h:5000" in refused.value.message
    assert "--tracking-uri http://h:5000" in refused.value.hint


@pytest.mark.parametrize("given", ["http://h:5001", "sqlite:////elsewhere.db", "http://other:5000"])
def test_another_registry_is_refused(given: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(StalePlanError) as refused:
        saved_plan_uri(_saved("http://h:5000", None), given)
    assert "nothing was applied" in refused.value.message
    monkeypatch.setenv("MLFLOW_TRACKING_URI", given)
    with pytest.raises(StalePlanError):
        saved_plan_uri(_saved("http://h:5000", None), None)


def test_the_same_registry_with_credentials_is_accepted() -> None:
    assert (
        saved_plan_uri(_saved("http://h:5000", None), "http://u:p@h:5000/") == "http://u:p@h:5000/"
    )


def test_a_plan_without_a_recorded_registry_is_refused() -> None:
    with pytest.raises(GitopsError, match="does not record which registry"):
        saved_plan_uri(_saved(None, "sqlite:////r/mlflow.db"), None)
