"""What the relay's tests share: an MLflow 3.3+ server that delivers webhooks to loopback, the
relay as its own process, and a poll with a deadline (never a sleep as an assertion)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.github.fake_github import TOKEN
from tests.servers import MlflowServer, free_port, stop_group

SECRET = "relay-test-signing-secret"
SECRET_ENV = "RELAY_TEST_SECRET"
REPOSITORY = "acme/models"
ROOT = Path(__file__).resolve().parents[2]

# what an MLflow server needs to deliver webhooks to the relay on 127.0.0.1: http allowed, private
# addresses allowed, one key for the secrets of both workers, and a short cache of the webhook list
WEBHOOK_SERVER_ENV = {
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": "9y4iVB-dljur2zkyCdlUJ1ag6enQf4stTlgTT4iYCN4=",
    "MLFLOW_WEBHOOK_CACHE_TTL": "1",
}

T = TypeVar("T")


def webhook_server(workdir: Path) -> MlflowServer:
    """`mlflow server` (this venv's MLflow 3) on SQLite, delivering webhooks to loopback."""
    return MlflowServer(
        f"sqlite:///{workdir}/mlflow.db", workdir, env=WEBHOOK_SERVER_ENV, workers=1
    )


def wait_for(what: str, probe: Callable[[], T | None], deadline_s: float = 60.0) -> T:
    """Poll `probe` until it returns something truthy; fail saying `what` after the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s:.0f} s: {what}")
        time.sleep(0.1)


class RelayProcess:
    """`python -m mlflow_gitops relay` on a free loopback port, with its journal in `folder`."""

    def __init__(
        self, folder: Path, github_url: str, *, port: int | None = None, settle: float = 5.0
    ) -> None:
        self.folder, self.github_url, self.settle = folder, github_url, settle
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.journal = folder / "relay.jsonl"
        self.log = folder / "relay.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RelayProcess:
        env = {
            **os.environ,
            SECRET_ENV: SECRET,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_API_URL": self.github_url,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        args = [
            sys.executable, "-m", "mlflow_gitops", "relay",
            "--port", str(self.port), "--repository", REPOSITORY,
            "--secret-env", SECRET_ENV, "--journal", str(self.journal),
            "--settle", str(self.settle), "--retry-for", "600",
        ]  # fmt: skip
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        wait_for("the relay answers /healthz", self._up, 60)
        return self

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the relay exited: {self.log.read_text()[-2000:]}")
        try:
            return self.health()[0] == 200
        except OSError:
            return False

    def health(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        """POST /webhook as MLflow would; the status the relay answers."""
        request = urllib.request.Request(f"{self.url}/webhook", data=body, method="POST")
        for key, value in {"Content-Type": "application/json", **headers}.items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is not None:
            stop_group(self.proc, grace=10, kill=kill)
