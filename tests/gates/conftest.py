"""The registry of the gate tests: the course's three regressors trained on taxi-shaped data, one
per test module."""

from __future__ import annotations

import pytest

from tests.gates.harness import HOOK, Trained


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    from mlflow_gitops.demo.taxi import write_months
    from mlflow_gitops.demo.train import train_and_log

    folder = tmp_path_factory.mktemp("gates")
    paths = write_months(folder / "data", rows=3000)
    (folder / "features.py").write_text(HOOK)
    uri = f"sqlite:///{folder}/mlflow.db"
    runs = train_and_log(paths[0], paths[1], "gates", uri, (folder / "artifacts").as_uri())
    return Trained(uri, folder, [r.run_id for r in runs])
