"""Credentials never reach any output: every string leaving the tool passes through redact()."""

from __future__ import annotations

import os
import re

SECRET_VARIABLES = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "GITHUB_TOKEN",
    "DATABRICKS_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CLIENT_SECRET",
)
MASK = "***"

# scheme://user:password@host, and scheme://token@host
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s]+)@")
# ?password=..., &token=..., access_token=... in query strings
_QUERY_SECRET = re.compile(
    r"(?P<key>(?:password|passwd|pwd|token|access_token|secret|api_key|apikey)=)[^&\s]+",
    re.IGNORECASE,
)


def secret_values(env: dict[str, str] | None = None) -> list[str]:
    """The values of credential variables set now, longest first."""
    source = os.environ if env is None else env
    values = {source[k] for k in SECRET_VARIABLES if len(source.get(k, "")) >= 3}
    return sorted(values, key=len, reverse=True)


def redact(text: str, env: dict[str, str] | None = None) -> str:
    """The text with URI credentials and the values of credential variables masked."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)
    for value in secret_values(env):
        text = text.replace(value, MASK)
    return text
