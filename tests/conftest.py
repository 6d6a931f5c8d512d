"""Settings for every test: no call leaves the machine (MLflow's usage telemetry is off for the
tests and for every server and child process they start), and no test leaves its registry URI
behind for the next one (mlflow.set_tracking_uri writes MLFLOW_TRACKING_URI into os.environ)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_URI_GLOBALS = (
    ("mlflow.tracking._tracking_service.utils", "_tracking_uri"),
    ("mlflow.tracking._model_registry.utils", "_registry_uri"),
)


@pytest.fixture(autouse=True)
def _registry_uris_restored() -> Iterator[None]:
    """The process's MLflow URIs (variables and MLflow's globals) as they were before the test."""
    variables = {key: os.environ.get(key) for key in _URI_VARIABLES}
    globals_ = {
        (module, name): getattr(sys.modules[module], name)
        for module, name in _URI_GLOBALS
        if module in sys.modules
    }
    yield
    for key, value in variables.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    for module, name in _URI_GLOBALS:
        if module in sys.modules:
            setattr(sys.modules[module], name, globals_.get((module, name)))
