"""Names and values that MLflow accepts but that are hostile where they are shown: HTML and Markdown
in a PR comment, escape sequences and newlines in a terminal or a CI log. The registry may hold
them; every output must render them inert."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlflow_gitops import reconcile
from mlflow_gitops.audit import AuditContext
from mlflow_gitops.observed import ModelState, RegistryState, VersionState
from mlflow_gitops.plan.planner import plan
from mlflow_gitops.render import json as render_json
from mlflow_gitops.render import markdown as render_markdown
from mlflow_gitops.render import text as render_text
from tests.cli_runner import run_cli
from tests.fakes import FakeRegistry
from tests.helpers import load_text

NOW = datetime(2026, 11, 27, tzinfo=UTC)  # the one clock of these plans

HTML_NAME = "<img src=x onerror=alert(1)>"  # no / or :, so MLflow takes it as a model name
SPEC = f"""
version: 1
models:
  "{HTML_NAME}":
    description: "**bold** [link](https://evil.example) <script>alert(1)</script> @here"
    tags: {{team: "\\e]8;;https://evil.example\\e\\\\click\\e]8;;\\e\\\\", task: "a\\nb|c"}}
    versions:
      - version: 1
        stage: Production
        description: "\\e[2J\\e[H cleared | ![x](https://evil.example/x.png)"
"""


def _planned(tmp_path: Path):  # type: ignore[no-untyped-def]
    live = ModelState(name=HTML_NAME, versions=(VersionState(1, "Staging", description="<b>"),))
    return plan(load_text(tmp_path, SPEC), RegistryState(models={HTML_NAME: live}), NOW)


def test_a_plan_renders_html_markdown_and_escapes_inert(tmp_path: Path) -> None:
    planned = _planned(tmp_path)
    assert not planned.is_empty
    text = render_text.render_plan(planned)
    markdown = render_markdown.render_plan(planned)
    document = render_json.render_plan(planned, tracking_uri="sqlite:///x.db", file="r.yaml")
    for out in (text, markdown, document):
        assert "\x1b" not in out
        assert "\x07" not in out
    for raw in ("<img", "<script", "](https", "**bold**", "@here"):
        assert raw not in markdown, raw
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert all(line.count(" | ") == 4 for line in table[1:]), table  # no cell breaks out
    assert json.loads(document)["changes"]


def _applied(tmp_path: Path) -> tuple[str, str]:
    live = ModelState(name=HTML_NAME, versions=(VersionState(1, "Staging"),))
    registry = FakeRegistry(models={HTML_NAME: live})
    planned = reconcile.make_plan(load_text(tmp_path, SPEC), registry, None, NOW)
    result = reconcile.apply_plan(planned, registry, AuditContext(actor="<b>x</b>"), NOW)
    assert result.ok
    return render_json.render_result(result), render_text.render_result(result)


def test_an_apply_result_as_json_is_inert(tmp_path: Path) -> None:
    document, _ = _applied(tmp_path)
    assert "\x1b" not in document
    assert json.loads(document)["ok"]


def test_an_apply_result_as_text_is_inert(tmp_path: Path) -> None:
    _, text = _applied(tmp_path)
    assert "\x1b" not in text


def test_error_messages_do_not_echo_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "registry.yaml"
    spec.write_text(
        'version: 1\nmodels:\n  "\\e[2J\\e[31mowned/x": {}\n'
        '  m:\n    aliases: {"\\e]0;pwned\\a": 1, "x\\n::error::forged": 2}\n',
        encoding="utf-8",
    )
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    outcome = run_cli(capsys, "validate", str(spec))
    assert outcome.code == 1
    assert str(spec) in outcome.err
    assert "\x1b" not in outcome.err
    assert "\x07" not in outcome.err
    assert "\n::error::forged" not in outcome.err
