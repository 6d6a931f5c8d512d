"""Evaluation gates: pure verdicts (verdict), evidence from MLflow (evidence), the runner (run)."""
