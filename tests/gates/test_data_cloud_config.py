"""How the standard environment of Google Cloud Storage and Azure becomes pyarrow's filesystem
(no server: the options pyarrow was given, as its pickled form shows them). The same settings
reach the emulators in test_data_clouds.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mlflow_gitops.gates.data import DataError, filesystem, location
from mlflow_gitops.secrets import redact

KEY = "a2V5LW9mLXRoZS1hY2NvdW50LWZvci10ZXN0cw=="
OTHER_KEY = "b3RoZXIta2V5LW9mLWFub3RoZXItYWNjb3VudA=="


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith(("AZURE_", "STORAGE_", "GOOGLE_"))]:
        monkeypatch.delenv(key)


def options(uri: str) -> tuple[dict[str, Any], str]:
    scheme, where = location(uri, Path("."))
    fs, path = filesystem(scheme, where)
    return fs.__reduce__()[1][0], path


def test_storage_emulator_host_is_reached_anonymously(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "localhost:9023")  # no scheme: http
    got, path = options("gs://bucket/green/x.parquet")
    assert (got["anonymous"], got["endpoint_override"], got["scheme"]) == (
        True, "localhost:9023", "http",
    )  # fmt: skip
    assert path == "bucket/green/x.parquet"
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    got, _ = options("gs://bucket/green/x.parquet")
    assert (got["anonymous"], got["endpoint_override"]) == (False, "")  # Google's own endpoint


@pytest.mark.parametrize(
    ("connection", "blob", "dfs", "scheme"),
    [
        (
            f"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={KEY};"
            "BlobEndpoint=http://127.0.0.1:10000/acct;",
            "127.0.0.1:10000",
            "127.0.0.1:10000",
            "http",
        ),
        (
            f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};"
            "EndpointSuffix=core.chinacloudapi.cn",
            ".blob.core.chinacloudapi.cn",
            ".dfs.core.chinacloudapi.cn",
            "https",
        ),
        (
            f"AccountName=acct;AccountKey={KEY};BlobEndpoint=https://acct.blob.core.windows.net/",
            ".blob.core.windows.net",
            ".dfs.core.windows.net",
            "https",
        ),
    ],
    ids=["azurite", "endpoint-suffix", "account-host"],
)
def test_a_connection_string_gives_account_key_and_endpoints(
    monkeypatch: pytest.MonkeyPatch, connection: str, blob: str, dfs: str, scheme: str
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection)
    for uri in ("az://holdout/green/x.parquet", "abfs://holdout@acct.dfs.core.windows.net/green/x.parquet"):  # fmt: skip
        got, path = options(uri)
        assert path == "holdout/green/x.parquet"
        assert (got["account_name"], got["account_key"]) == ("acct", KEY)
        assert (got["blob_storage_authority"], got["dfs_storage_authority"]) == (blob, dfs)
        assert got["blob_storage_scheme"] == got["dfs_storage_scheme"] == scheme


def test_use_development_storage_means_azurites_published_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")
    got, _ = options("az://holdout/x.parquet")
    assert got["account_name"] == "devstoreaccount1"
    assert got["blob_storage_authority"] == "127.0.0.1:10000"
    assert got["blob_storage_scheme"] == "http"


def test_credentials_are_used_only_for_their_own_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", f"AccountName=acct;AccountKey={KEY}")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "third")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", OTHER_KEY)
    got, _ = options("abfss://c@other.dfs.core.windows.net/x.parquet")
    assert got["account_name"] == "other"
    assert (got["account_key"], got["sas_token"]) == ("", "")  # Azure's default credential
    got, _ = options("abfss://c@third.dfs.core.windows.net/x.parquet")
    assert got["account_key"] == OTHER_KEY
    got, _ = options("az://c/x.parquet")  # the connection string names the account
    assert (got["account_name"], got["account_key"]) == ("acct", KEY)


def test_an_endpoint_only_connection_string_takes_the_key_or_sas_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = "AccountName=acct;BlobEndpoint=http://127.0.0.1:10000/acct"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", endpoint)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", "?sv=2021-08-06&sp=rl&sig=abc%2Bdef")
    got, _ = options("az://c/x.parquet")
    assert got["sas_token"] == "?sv=2021-08-06&sp=rl&sig=abc%2Bdef"
    assert got["blob_storage_authority"] == "127.0.0.1:10000"


def test_an_az_url_without_an_account_says_which_variables_name_one() -> None:
    with pytest.raises(DataError, match="names no storage account") as raised:
        options("az://c/x.parquet")
    assert "AZURE_STORAGE_CONNECTION_STRING" in raised.value.hint


def test_an_abfs_container_is_shown_and_a_sas_signature_is_not() -> None:
    shown = redact(
        "abfs://holdout@acct.dfs.core.windows.net/x failed for "
        "'http://h/acct/holdout/x?se=2026&sig=c2VjcmV0%2B&sp=l'"
    )
    assert "abfs://holdout@acct.dfs.core.windows.net/x" in shown
    assert "c2VjcmV0" not in shown
    assert "http://u:***@h" in redact("http://u:pw@h")  # other schemes' passwords still masked
