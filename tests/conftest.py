"""Settings for every test: no call leaves the machine (MLflow's usage telemetry is off for the
tests and for every server and child process they start)."""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
