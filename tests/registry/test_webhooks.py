"""Webhooks as declared state, planned and applied through the same path as models, against the
in-memory registry: the secret comes from its variable and is never in a plan; a webhook changed
since the plan is refused; a server without webhooks is a located error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlflow_gitops.audit import AuditContext
from mlflow_gitops.errors import SpecError
from mlflow_gitops.plan.changes import WebhookFields
from mlflow_gitops.reconcile import apply_plan, make_plan
from mlflow_gitops.render.common import step_text
from mlflow_gitops.render.json import plan_document
from mlflow_gitops.render.text import render_plan
from tests.fakes import FakeRegistry, FakeWebhooks
from tests.helpers import load_text

NOW = datetime(2026, 12, 6, tzinfo=UTC)
AUDIT = AuditContext(commit="1a2b3c4d5e6f", pr=12, actor="alice")
SECRET = "s3cr3t-relay-signing-key"
FILE = """\
version: 1
webhooks:
  drift-relay:
    url: https://relay.example.com/webhook
    events: [model_version_alias.created, model_version_tag.set]
    secret_env: RELAY_SECRET
models:
  m:
    description: a model
"""


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(hooks=FakeWebhooks())


def test_a_declared_webhook_is_created_with_its_secret_and_the_next_plan_is_empty(
    tmp_path: Path, registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAY_SECRET", SECRET)
    loaded = load_text(tmp_path, FILE)
    planned = make_plan(loaded, registry, None, NOW)

    shown = render_plan(planned.plan)
    assert "+ webhook drift-relay" in shown
    assert "url https://relay.example.com/webhook" in shown
    saved = json.dumps(plan_document(planned.plan))
    assert "RELAY_SECRET" in saved  # the variable's name, so apply knows where to look
    assert SECRET not in saved
    assert SECRET not in shown

    result = apply_plan(planned, registry, AUDIT, NOW)

    assert result.ok, result.steps
    assert registry.hooks is not None
    (hook,) = registry.hooks.hooks.values()
    assert (hook.name, hook.url, hook.status) == (
        "drift-relay",
        "https://relay.example.com/webhook",
        "ACTIVE",
    )
    assert registry.hooks.secrets[hook.webhook_id] == SECRET
    assert make_plan(loaded, registry, None, NOW).plan.is_empty


def test_a_webhook_made_by_someone_else_since_the_plan_is_refused(
    tmp_path: Path, registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAY_SECRET", SECRET)
    planned = make_plan(load_text(tmp_path, FILE), registry, None, NOW)
    assert registry.hooks is not None
    fields = WebhookFields(url="https://elsewhere.example.com/", events=("model_version.created",))
    registry.hooks.create("drift-relay", fields, None)

    result = apply_plan(planned, registry, AUDIT, NOW)

    step = next(s for s in result.steps if step_text(s) == "create webhook drift-relay")
    assert step.status == "failed"
    assert "webhook drift-relay was created since the plan was made" in step.detail
    assert [h.url for h in registry.hooks.hooks.values()] == ["https://elsewhere.example.com/"]
    assert registry.models["m"].description == "a model"  # the models went on


def test_a_missing_secret_variable_fails_that_webhook_and_says_which(
    tmp_path: Path, registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELAY_SECRET", raising=False)
    planned = make_plan(load_text(tmp_path, FILE), registry, None, NOW)

    result = apply_plan(planned, registry, AUDIT, NOW)

    step = next(s for s in result.steps if step_text(s) == "create webhook drift-relay")
    assert step.status == "failed"
    assert "secret variable RELAY_SECRET is not set" in step.detail
    assert registry.hooks is not None
    assert not registry.hooks.hooks


def test_a_webhook_declared_null_is_deleted(
    tmp_path: Path, registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert registry.hooks is not None
    fields = WebhookFields(url="https://old.example.com/", events=("model_version.created",))
    registry.hooks.create("old", fields, None)
    kept = registry.hooks.create("someone-elses", fields, None)
    text = "version: 1\nwebhooks:\n  old: null\nmodels: {}\n"

    planned = make_plan(load_text(tmp_path, text), registry, None, NOW)
    result = apply_plan(planned, registry, AUDIT, NOW)

    assert result.ok, result.steps
    assert list(registry.hooks.hooks) == [kept]


def test_webhooks_on_a_server_without_them_are_a_located_error_naming_the_version(
    tmp_path: Path,
) -> None:
    registry = FakeRegistry(hooks=None)  # an MLflow 2.x server

    with pytest.raises(SpecError) as err:
        make_plan(load_text(tmp_path, FILE), registry, None, NOW)

    (issue,) = err.value.issues
    assert (issue.line, issue.column, issue.path) == (2, 1, "webhooks")
    assert "webhooks need an MLflow 3.3+ server" in issue.message


def test_a_file_without_webhooks_never_asks_for_them(tmp_path: Path) -> None:
    registry = FakeRegistry(hooks=None)
    planned = make_plan(load_text(tmp_path, "version: 1\nmodels: {m: {}}\n"), registry, None, NOW)
    assert [c.kind for c in planned.plan.changes] == ["create_model"]
