"""An Azure Storage server for the tests: Azurite's Blob service (npm package `azurite`, pinned in
tests/.azurite/package.json) on a free loopback port, as a child process in its own process group,
always stopped; its access log has a line per request.

Azurite checks Shared Key and SAS signatures like Azure does. The account and its key are made
for each run (AZURITE_ACCOUNTS), not the emulator's published development key. Azurite is
installed by .ci/run (`npm ci --prefix tests/.azurite`) or, when missing, by `install()`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.servers import LoopbackProcess, free_port

FOLDER = Path(__file__).resolve().parent / ".azurite"
BINARY = FOLDER / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "gitopsholdout"
SAS_VERSION = "2021-08-06"


def install() -> Path:
    """Azurite's blob server as pinned by tests/.azurite/package-lock.json (npm ci)."""
    if not BINARY.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("the Azure tests need Node.js and npm (Azurite is an npm package)")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(FOLDER)],
            check=True, timeout=600,
        )  # fmt: skip
    return BINARY


class Azurite(LoopbackProcess):
    """Azurite's Blob service for one account with a key of its own.

    `connection_string()` and `env_key()` are the two standard ways a user reaches it;
    `sas(...)` signs an account SAS the way Azure does."""

    name = "Azurite"

    def __init__(self, workdir: Path) -> None:
        binary = install()
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}/{ACCOUNT}"
        self.key = base64.b64encode(secrets.token_bytes(64)).decode()
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "azurite.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZURITE_"))}
        env["AZURITE_ACCOUNTS"] = f"{ACCOUNT}:{self.key}"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [
                    str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                    "--location", str(workdir / "store"), "--disableTelemetry",
                    "--skipApiVersionCheck",  # pyarrow's Azure SDK may be newer than Azurite
                ],
                stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env,
                start_new_session=True,
            )  # fmt: skip
        try:
            self.wait_listening()
        except BaseException:
            self.stop()
            raise

    def connection_string(self, secret: str | None = None, endpoint: str | None = None) -> str:
        """AZURE_STORAGE_CONNECTION_STRING whose BlobEndpoint is this Azurite: with the account
        key (or `secret`: `AccountKey=...` or `SharedAccessSignature=...`, "" for none)."""
        credential = f"AccountKey={self.key};" if secret is None else secret
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};{credential}"
            f"BlobEndpoint={endpoint or self.endpoint};"
        )

    def sas(self, permissions: str = "rl", *, expiry: timedelta = timedelta(hours=1),
            key: str | None = None) -> str:  # fmt: skip
        """An account SAS for the blob service (signed with `key`, by default the account's)."""
        expires = (datetime.now(UTC) + expiry).strftime("%Y-%m-%dT%H:%M:%SZ")
        fields = [ACCOUNT, permissions, "b", "sco", "", expires, "", "", SAS_VERSION, "", ""]
        digest = hmac.new(
            base64.b64decode(key or self.key), "\n".join(fields).encode(), hashlib.sha256
        ).digest()
        signature = base64.b64encode(digest).decode()
        return (
            f"sv={SAS_VERSION}&ss=b&srt=sco&sp={permissions}&se={quote(expires, safe='')}"
            f"&sig={quote(signature, safe='')}"
        )

    def filesystem(self) -> Any:
        """pyarrow's Azure filesystem on this Azurite, for the tests' own uploads."""
        import pyarrow.fs as pafs

        authority = f"127.0.0.1:{self.port}"
        return pafs.AzureFileSystem(
            account_name=ACCOUNT, account_key=self.key,
            blob_storage_authority=authority, dfs_storage_authority=authority,
            blob_storage_scheme="http", dfs_storage_scheme="http",
        )  # fmt: skip

    def upload(self, local: Path, path: str) -> None:
        """Write a local file to `container/blob` (the container is created if missing)."""
        fs = self.filesystem()
        fs.create_dir(path.split("/", maxsplit=1)[0])
        with fs.open_output_stream(path) as out:
            out.write(local.read_bytes())
