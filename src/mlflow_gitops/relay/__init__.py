"""`mlflow-gitops relay`: MLflow's signed registry events in, one GitHub repository_dispatch per
event a person caused out, so that the drift workflow runs within seconds of a hand edit."""
