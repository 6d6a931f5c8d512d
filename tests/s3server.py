"""An S3-compatible server for the tests: moto in server mode, on a free loopback port, with
authentication on (two IAM users: one that may read and write, one that may do nothing), always
stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.servers import LoopbackProcess, free_port

REGION = "us-east-1"
# the unauthenticated requests the setup below makes before authentication applies
SETUP_ACTIONS = 5
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


class MotoServer(LoopbackProcess):
    """`moto.server` as a child process in its own process group.

    `reader` and `denied` hold AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY of an IAM user allowed
    s3:* and of one with no policy; `env(user)` is the standard environment of that user."""

    name = "moto server"

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "moto.log"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "MOTO_", "INITIAL_NO_AUTH"))
        }
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(SETUP_ACTIONS)
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env,
                start_new_session=True,
            )  # fmt: skip
        try:
            self.wait_listening()
            self.reader, self.denied = self._users()
        except BaseException:
            self.stop()
            raise

    def _users(self) -> tuple[dict[str, str], dict[str, str]]:
        iam = self.client("iam", {"AWS_ACCESS_KEY_ID": "setup", "AWS_SECRET_ACCESS_KEY": "setup"})
        keys = []
        for name in ("reader", "denied"):
            iam.create_user(UserName=name)
            key = iam.create_access_key(UserName=name)["AccessKey"]
            keys.append(
                {
                    "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                    "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                }
            )
        iam.put_user_policy(
            UserName="reader", PolicyName="s3", PolicyDocument=json.dumps(ALLOW_ALL)
        )
        return keys[0], keys[1]

    def env(self, user: dict[str, str]) -> dict[str, str]:
        """The standard AWS environment for `user` against this server."""
        return {**user, "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": REGION}

    def client(self, service: str, user: dict[str, str] | None = None) -> Any:
        """A boto3 client of this server (the tests' own uploads; the tool uses pyarrow)."""
        import boto3

        creds = user or self.reader
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        )
