"""The boundary to registries: the port by capability (port), the algorithms every backend shares
over its primitives (lock, audit, copy), and the MLflow backend (mlflow/)."""
