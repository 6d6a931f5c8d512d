"""Which filters the reader sends to each server generation, and which refusal switches them:
only the one MLflow 2.x gives for `name IN`; another is an error, not a fallback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlflow_gitops.registry.mlflow.errors import refuses_name_in
from mlflow_gitops.registry.mlflow.reads import MAX_NAME_FILTERS, filters
from tests.cli_runner import run_cli
from tests.helpers import write_spec
from tests.servers import free_port

REFUSAL = (
    "INVALID_PARAMETER_VALUE: Only the 'run_id' attribute supports comparison with a list of "
    "quoted string values."
)


class FakeMlflowError(Exception):
    """Shaped like mlflow's RestException: an error_code and a message."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code, self.message = error_code, message


@pytest.mark.parametrize(
    ("names", "no_name_in", "expected"),
    [
        (None, False, [None]),
        (None, True, [None]),
        (["b", "a"], False, ["name IN ('a', 'b')"]),
        (["b", "a"], True, ["name = 'a'", "name = 'b'"]),
        (["it's"], True, ["name = 'it\\'s'"]),
        ([f"m{i}" for i in range(MAX_NAME_FILTERS)], True, [f"name = 'm{i}'" for i in range(5)]),
        ([f"m{i}" for i in range(MAX_NAME_FILTERS + 1)], True, [None]),
        ([f"m{i:04d}" for i in range(2000)], False, [None]),  # more than 2 IN chunks: one scan
    ],
)
def test_filters_per_server_generation(
    names: list[str] | None, no_name_in: bool, expected: list[str | None]
) -> None:
    assert filters(None if names is None else set(names), no_name_in) == expected


@pytest.mark.parametrize(
    ("error", "refusal"),
    [
        (FakeMlflowError("INVALID_PARAMETER_VALUE", REFUSAL), True),
        # the same words under another code, another INVALID_PARAMETER_VALUE: real errors
        (FakeMlflowError("BAD_REQUEST", REFUSAL), False),
        (FakeMlflowError("INVALID_PARAMETER_VALUE", "Invalid filter 'name IN ('a''"), False),
        (FakeMlflowError("PERMISSION_DENIED", "Permission denied"), False),
        (ConnectionError("Connection refused"), False),
    ],
)
def test_only_mlflow2s_refusal_of_name_in_switches_filters(error: Exception, refusal: bool) -> None:
    assert refuses_name_in(error) is refusal


def test_name_filters_fit_a_url_once_percent_encoded() -> None:
    from urllib.parse import quote_plus

    from mlflow_gitops.registry.mlflow.reads import (
        MAX_FILTER_NAMES,
        MAX_FILTER_URL_CHARS,
        in_chunks,
    )

    names = [f"modèle prévision n°{i:04d}" for i in range(400)] + [f"m{i}" for i in range(4000)]
    chunks = in_chunks(names)
    assert all(len(quote_plus(c)) <= MAX_FILTER_URL_CHARS + 40 for c in chunks)
    assert all(c.count("', '") + 1 <= MAX_FILTER_NAMES for c in chunks)
    assert sum(c.count("', '") + 1 for c in chunks) == len(names)


@pytest.fixture
def refusing_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback server answering every search with another INVALID_PARAMETER_VALUE."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            body = json.dumps(
                {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid clause 'name IN'"}
            ).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", paths
    httpd.shutdown()
    httpd.server_close()


def test_another_refusal_is_an_error_not_a_fallback(
    refusing_server: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, paths = refusing_server
    spec = write_spec(tmp_path, "version: 1\nmodels:\n  m:\n    versions:\n      - {version: 1}\n")
    result = run_cli(capsys, "plan", str(spec), "--tracking-uri", uri)
    assert result.code == 1
    assert "Invalid clause 'name IN'" in result.err
    # the models and versions searches, sent at once; no second try with other filters
    assert sorted(p.split("?")[0].rsplit("/", 2)[-2] for p in paths) == [
        "model-versions",
        "registered-models",
    ]
    assert all("name+IN" in p or "name%20IN" in p for p in paths)
