"""Dev and prod as two real registries: the demo's regressors trained into dev, and the loading
and scoring that tell a copy predicts exactly as its source (tests/integration/test_tree.py,
tests/registry/test_copy.py)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.integration.mlflow_helpers import client

PREPROCESSOR = "preprocessor/preprocessor.b"  # the DictVectorizer in the demo's runs


@dataclass(frozen=True)
class Trained:
    model: str
    run_id: str  # the gradient-boosting run, registered as `version`
    version: int
    valid: Path  # the month the model is scored on
    runs: tuple[Any, ...] = ()  # the three TrainedRuns (linear, boosting, forest)


def train_into(uri: str, model: str, folder: Path) -> Trained:
    """The demo's three regressors (model, DictVectorizer, params, metrics) logged into `uri`,
    the gradient-boosting one registered as a version of `model`."""
    from mlflow_gitops.demo.taxi import write_months
    from mlflow_gitops.demo.train import register_runs, train_and_log

    train, valid, _ = write_months(folder, rows=2000)
    runs = train_and_log(train, valid, "taxi", uri)
    boosted = next(r for r in runs if r.model_type == "GradientBoostingRegressor")
    [version] = register_runs([boosted], model, uri)
    return Trained(model, boosted.run_id, version, valid, tuple(runs))


def features(uri: str, run_id: str, valid: Path, tmp: Path) -> Any:
    """The validation month through the run's own DictVectorizer, downloaded from `uri`."""
    from mlflow_gitops.demo.taxi import prepare, read_trips

    path = client(uri).download_artifacts(run_id, PREPROCESSOR, str(tmp))
    with open(path, "rb") as fh:
        vectorizer = pickle.load(fh)
    dicts, _ = prepare(read_trips(valid))
    return vectorizer.transform(dicts)


def predict(uri: str, model: str, version: int, x: Any) -> Any:
    """Load models:/<model>/<version> from `uri` with pyfunc and predict."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return np.asarray(mlflow.pyfunc.load_model(f"models:/{model}/{version}").predict(x))
