"""Fixtures for the GitHub flow: a fake GitHub API on loopback, a real MLflow registry with real
scikit-learn models (the context and the job runner are in harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.github.fake_github import FakeGitHub, serve
from tests.github.harness import APPLIED, MODEL, Registry
from tests.integration.mlflow_helpers import log_regressor, register


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    server = serve(fake)
    yield fake
    server.shutdown()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """A sqlite registry: three versions of MODEL and two of APPLIED, from real logged runs."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('registry')}/mlflow.db"
    runs = [log_regressor(uri, "linear"), log_regressor(uri, "tree", seed=1)]
    runs.append(log_regressor(uri, "linear", seed=2))
    for run in runs:
        register(uri, MODEL, run.run_id)
    for run in runs[:2]:
        register(uri, APPLIED, run.run_id)
    return Registry(uri)
