"""A Google Cloud Storage server for the tests: gcp-storage-emulator (GCS's JSON API) on a free
loopback port, as a child process in its own process group, always stopped; every request it
answers is a line of its log.

The emulator has no authentication. Buckets named in `private` answer as GCS answers an anonymous
caller on a bucket it may not read (401 with GCS's own error body): with STORAGE_EMULATOR_HOST
the client libraries call anonymously, so that is what a denied read looks like there. Run as
`python -m tests.gcsserver PORT [PRIVATE_BUCKET ...]`."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.servers import LoopbackProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "test-project"
BUCKET_IN_PATH = re.compile(r"/b/([^/?]+)")


class GcsEmulator(LoopbackProcess):
    """gcp-storage-emulator in memory; `env()` is the standard environment that reaches it."""

    name = "GCS emulator"

    def __init__(self, workdir: Path, private: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "gcs.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "GOOGLE_"))}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-u", "-m", "tests.gcsserver", str(self.port), *private],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                start_new_session=True,
            )  # fmt: skip
        try:
            self.wait_listening()
        except BaseException:
            self.stop()
            raise

    def env(self) -> dict[str, str]:
        """What a user sets to reach this emulator (the client libraries' convention)."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def filesystem(self) -> Any:
        """pyarrow's GCS filesystem on this emulator, for the tests' own uploads."""
        import pyarrow.fs as pafs

        return pafs.GcsFileSystem(
            anonymous=True, endpoint_override=f"127.0.0.1:{self.port}", scheme="http",
            project_id=PROJECT,
        )  # fmt: skip

    def upload(self, local: Path, path: str) -> None:
        """Write a local file to `bucket/key` (the bucket is created if missing)."""
        fs = self.filesystem()
        fs.create_dir(path.split("/", maxsplit=1)[0])
        with fs.open_output_stream(path) as out:
            out.write(local.read_bytes())


def denied_body(bucket: str) -> bytes:
    """GCS's answer to an anonymous caller on a bucket it may not read."""
    message = (
        "Anonymous caller does not have storage.objects.get access to the Google Cloud Storage "
        f"object. Permission 'storage.objects.get' denied on resource (bucket {bucket})."
    )
    error = {
        "code": 401,
        "message": message,
        "errors": [
            {"message": message, "domain": "global", "reason": "required",
             "locationType": "header", "location": "Authorization"}
        ],
    }  # fmt: skip
    return json.dumps({"error": error}).encode()


def main(argv: list[str]) -> None:
    from gcp_storage_emulator import server

    port, private = int(argv[0]), set(argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    original = server.Router.handle

    def handle(router: Any, method: str) -> None:
        handler = router._request_handler
        found = BUCKET_IN_PATH.search(handler.path)
        if found and found.group(1) in private:
            body = denied_body(found.group(1))
            handler.send_response(401)
            handler.send_header("Content-Type", "application/json; charset=UTF-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        original(router, method)

    server.Router.handle = handle  # type: ignore[method-assign]
    server.create_server("127.0.0.1", port, in_memory=True).run()


if __name__ == "__main__":
    main(sys.argv[1:])
