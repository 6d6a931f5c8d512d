"""A registry that is unreachable, answers 5xx, or was made by MLflow 1.30; and secrets."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.cli_runner import run_cli, run_process
from tests.helpers import write_spec
from tests.integration.mlflow_helpers import log_regressor, register
from tests.servers import MlflowServer, free_port

pytestmark = [pytest.mark.integration]

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy" / "mlflow-1.30.db"
SPEC = "version: 1\nmodels:\n  m:\n    versions:\n      - {version: 1, stage: Production}\n"
FAST_FAIL = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


@pytest.fixture
def failing_server() -> Iterator[str]:
    """A loopback HTTP server that answers every request with 503, counting them."""

    class Handler(BaseHTTPRequestHandler):
        def _fail(self) -> None:
            self.server.hits += 1  # type: ignore[attr-defined]
            body = b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "upstream down"}'
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = _fail

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.hits = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_unreachable_registry_is_a_clear_error(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, SPEC)
    uri = f"http://127.0.0.1:{free_port()}"
    for command in ("plan", "apply"):
        result = run_process(command, str(spec), "--tracking-uri", uri, env=FAST_FAIL)
        assert result.code == 1, result
        assert "unreachable" in result.err
        assert "Traceback" not in result.err


def test_registry_answering_5xx_is_a_clear_error(tmp_path: Path, failing_server: str) -> None:
    spec = write_spec(tmp_path, SPEC)
    result = run_process("apply", str(spec), "--tracking-uri", failing_server, env=FAST_FAIL)
    assert result.code == 1, result
    assert "cannot read the registry" in result.err
    assert "Traceback" not in result.err


def test_credentials_never_appear_in_any_output(
    sqlite_server: MlflowServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the server has no auth and ignores the credentials; the tool must still never print them
    run = log_regressor(sqlite_server.uri)
    register(sqlite_server.uri, "secret-test", run.run_id)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pa55-in-env")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "user-in-env")
    for key, value in FAST_FAIL.items():
        monkeypatch.setenv(key, value)
    uri = sqlite_server.uri.replace("http://", "http://bob:hunter2-in-uri@")
    spec = write_spec(tmp_path, SPEC.replace("  m:", "  secret-test:"))
    plan_json = tmp_path / "plan.json"
    outputs = [
        run_cli(capsys, "plan", str(spec), "--tracking-uri", uri, "--out", str(plan_json)),
        run_cli(capsys, "plan", str(spec), "--tracking-uri", uri, "--format", "json"),
        run_cli(capsys, "plan", str(spec), "--tracking-uri", uri, "--format", "markdown"),
        run_cli(capsys, "apply", str(plan_json), "--tracking-uri", uri),
        run_cli(
            capsys,
            "plan",
            str(spec),
            "--tracking-uri",
            uri.replace(str(sqlite_server.port), str(free_port())),
        ),
    ]
    assert outputs[3].code == 0, outputs[3]
    assert outputs[4].code == 1
    texts = [o.out + o.err for o in outputs] + [plan_json.read_text()]
    from tests.integration.mlflow_helpers import client

    version = client(sqlite_server.uri).get_model_version("secret-test", "1")
    texts += [version.description, str(version.tags)]
    for text in texts:
        # passwords only: a username (MLFLOW_TRACKING_USERNAME, the user part of a URI) is not
        # a secret and may be shown (tests/test_secrets.py)
        for secret in ("hunter2-in-uri", "pa55-in-env"):
            assert secret not in text


def test_import_of_a_registry_made_by_mlflow_1_30(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "legacy.db"
    shutil.copy(LEGACY, db)  # MLflow migrates the schema in place: never open the fixture itself
    uri = f"sqlite:///{db}"
    out = tmp_path / "registry.yaml"
    before = db.read_bytes()
    # reading never upgrades a registry unasked: MLflow 1.30 could not open the file afterwards
    refused = run_cli(capsys, "import", "--tracking-uri", uri, "--out", str(out))
    assert refused.code == 1, refused
    assert "schema is out of date" in refused.err
    assert "MLFLOW_GITOPS_UPGRADE_DB=1" in refused.err
    assert db.read_bytes() == before
    assert not out.exists()
    # the user chooses the upgrade
    monkeypatch.setenv("MLFLOW_GITOPS_UPGRADE_DB", "1")
    imported = run_cli(capsys, "import", "--tracking-uri", uri, "--out", str(out))
    assert imported.code == 0, imported
    text = out.read_text()
    assert "legacy-regressor:" in text
    assert "legacy-empty:" in text
    assert "max_per_stage" not in text  # two in Staging is fine; only Production is limited
    assert text.count("stage: Staging") == 3
    assert run_cli(capsys, "validate", str(out)).code == 0
    planned = run_cli(capsys, "plan", str(out), "--tracking-uri", uri, "--detailed-exitcode")
    assert planned.code == 0, planned.out + planned.err
    assert "No changes" in planned.out
