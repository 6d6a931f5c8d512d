"""The MLflow backend: the registry port over MlflowClient, built from one small module per
capability (`adapter` composes them), and the gate evidence it serves. mlflow is imported lazily,
inside the functions that talk to a server."""
