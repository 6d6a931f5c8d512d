"""`python -m mlflow_gitops`."""

from mlflow_gitops.cli import run

run()
