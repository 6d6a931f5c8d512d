"""The boundary to MLflow: a narrow port (port) and its adapter over MlflowClient (client)."""
