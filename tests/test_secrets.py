"""Credentials never appear in output."""

from __future__ import annotations

import pytest

from mlflow_gitops.secrets import redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("cannot reach https://bob:hunter2@mlflow.example:5000/api", "hunter2"),
        ("postgresql://admin:pg-secret@db:5432/mlflow", "pg-secret"),
        ("https://tok3n-value@host/x", "tok3n-value"),
        ("http://host/x?token=abc123&other=1", "abc123"),
    ],
)
def test_uri_credentials_are_masked(text: str, secret: str) -> None:
    assert secret not in redact(text, env={})
    assert "***" in redact(text, env={})


def test_values_of_credential_variables_are_masked() -> None:
    env = {"MLFLOW_TRACKING_PASSWORD": "s3cr3t-pass", "MLFLOW_TRACKING_TOKEN": "tkn-999"}
    out = redact("auth failed for s3cr3t-pass and tkn-999", env=env)
    assert "s3cr3t-pass" not in out
    assert "tkn-999" not in out
