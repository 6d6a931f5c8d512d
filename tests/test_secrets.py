"""Credentials never appear in output; usernames are not credentials and are never masked."""

from __future__ import annotations

import pytest

from mlflow_gitops.secrets import redact


@pytest.mark.parametrize(
    ("text", "secret", "expected"),
    [
        (
            "cannot reach https://bob:hunter2@mlflow.example:5000/api",
            "hunter2",
            "cannot reach https://bob:***@mlflow.example:5000/api",
        ),
        (
            "postgresql://admin:pg-secret@db:5432/mlflow",
            "pg-secret",
            "postgresql://admin:***@db:5432/mlflow",
        ),
        ("https://tok3n-value@host/x", "tok3n-value", "https://***@host/x"),
        ("http://host/x?token=abc123&other=1", "abc123", "http://host/x?token=***&other=1"),
        ("https://:only-pass@host/x", "only-pass", "https://:***@host/x"),
    ],
)
def test_uri_credentials_are_masked_and_the_user_kept(
    text: str, secret: str, expected: str
) -> None:
    assert secret not in redact(text, env={})
    assert redact(text, env={}) == expected


def test_values_of_credential_variables_are_masked() -> None:
    env = {"MLFLOW_TRACKING_PASSWORD": "s3cr3t-pass", "MLFLOW_TRACKING_TOKEN": "tkn-999"}
    out = redact("auth failed for s3cr3t-pass and tkn-999", env=env)
    assert "s3cr3t-pass" not in out
    assert "tkn-999" not in out


def test_a_username_is_not_a_secret() -> None:
    # MLFLOW_TRACKING_USERNAME=rides once turned `team: rides` into `team: ***`
    env = {"MLFLOW_TRACKING_USERNAME": "rides", "MLFLOW_TRACKING_PASSWORD": "pw-of-rides"}
    text = "team: rides\nowner: rides-platform\nsecret: pw-of-rides"
    assert redact(text, env=env) == "team: rides\nowner: rides-platform\nsecret: ***"
