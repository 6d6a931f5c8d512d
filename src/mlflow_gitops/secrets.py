"""Credentials never reach any output: every message leaving the tool passes through redact().

Secrets are passwords, tokens and the password part of a URI; a username is not a secret (it is
shown, e.g. to say who holds the apply lock or who lacks a permission). Data the tool reproduces
(`import`) or writes to a file or the registry is never altered."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

SECRET_VARIABLES = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
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

# scheme://user:password@host (the password is masked, the user kept), and scheme://token@host;
# not Azure's abfs[s]:// and wasb[s]://, whose container@account names no secret
_USERINFO = re.compile(
    r"(?<![A-Za-z0-9+.\-])(?!(?i:abfss?|wasbs?)://)"
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?:(?P<user>[^/@:\s]*):)?(?P<secret>[^/@\s]+)@"
)
# ?password=..., &token=..., access_token=..., &sig=... (an Azure SAS) in query strings
_QUERY_SECRET = re.compile(
    r"(?P<key>(?:password|passwd|pwd|token|access_token|secret|api_key|apikey|sig)=)[^&\s]+",
    re.IGNORECASE,
)


# secrets the process learnt from elsewhere: each registry's password and token, read from the
# variables registry.yaml names for it (DEV_MLFLOW_TRACKING_PASSWORD, ...)
_EXTRA: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Mask these values too in every output from now on (values under 3 characters are not
    masked: they would mask ordinary text)."""
    _EXTRA.update(v for v in values if len(v) >= 3)


def secret_values(env: dict[str, str] | None = None) -> list[str]:
    """The values of credential variables set now, and the registered ones, longest first."""
    source = os.environ if env is None else env
    values = {source[k] for k in SECRET_VARIABLES if len(source.get(k, "")) >= 3} | _EXTRA
    return sorted(values, key=len, reverse=True)


def redact(text: str, env: dict[str, str] | None = None) -> str:
    """The text with URI credentials and the values of credential variables masked."""
    text = _USERINFO.sub(
        lambda m: f"{m['scheme']}{m['user'] + ':' if m['user'] is not None else ''}{MASK}@", text
    )
    text = _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)
    for value in secret_values(env):
        text = text.replace(value, MASK)
    return text
