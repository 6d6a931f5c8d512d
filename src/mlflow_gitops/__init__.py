"""mlflow-gitops: the desired state of an MLflow Model Registry, kept in registry.yaml."""

__version__ = "0.1.0"
