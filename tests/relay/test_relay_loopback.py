"""The relay on loopback between a real MLflow server (webhooks delivered to private addresses)
and the GitHub API fake: a hand edit becomes one repository_dispatch within seconds, the tool's
own apply dispatches nothing, forged, replayed and oversized deliveries are refused, and a relay
killed with an event queued sends it after its restart."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.webhooks.delivery import _generate_hmac_signature

from mlflow_gitops.reconcile import ApplyRequest, apply_request
from tests.cli_runner import run_cli
from tests.github.fake_github import FakeGitHub, serve
from tests.relay.harness import (
    REPOSITORY,
    SECRET,
    SECRET_ENV,
    RelayProcess,
    wait_for,
    webhook_server,
)
from tests.servers import MlflowServer, free_port

pytestmark = [pytest.mark.integration]


@dataclass
class World:
    server: MlflowServer
    github: FakeGitHub
    port: int  # the relay's: the webhook the tool created posts there
    folder: Path

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.server.uri, registry_uri=self.server.uri)

    def model(self, versions: int = 2) -> str:
        """A fresh registered model with `versions` versions."""
        name = f"m-{uuid.uuid4().hex[:8]}"
        self.client.create_registered_model(name)
        for _ in range(versions):
            self.client.create_model_version(name, f"s3://bucket/{name}/model")
        return name

    def dispatched(self, model: str) -> list[dict[str, Any]]:
        return [
            body["client_payload"]
            for repo, body in list(self.github.dispatches)
            if repo == REPOSITORY and body["client_payload"]["model"] == model
        ]


def _apply(folder: Path, text: str, uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "registry.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv(SECRET_ENV, SECRET)
    outcome = apply_request(
        ApplyRequest(path, uri, lambda: datetime.now(UTC), commit="1a2b3c4", actor="ci")
    )
    assert outcome.ok, outcome.result


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The server, the fake, and the relay's webhook, created by the tool from registry.yaml."""
    folder = tmp_path_factory.mktemp("relay")
    github = FakeGitHub()
    fake = serve(github)
    server = webhook_server(folder / "server")
    port = free_port()
    text = f"""\
version: 1
webhooks:
  drift-relay:
    url: http://127.0.0.1:{port}/webhook
    events: [model_version_alias.created, model_version_alias.deleted, model_version_tag.set,
             model_version_tag.deleted]
    description: hand edits start a drift run
    secret_env: {SECRET_ENV}
"""
    with pytest.MonkeyPatch.context() as mp:
        _apply(folder / "hooks", text, server.uri, mp)
    # both URIs: a registry URI left in the process by an earlier test must not be read here
    hooks = MlflowClient(tracking_uri=server.uri, registry_uri=server.uri).list_webhooks()
    assert [(h.name, h.url, str(h.status)) for h in hooks] == [
        ("drift-relay", f"http://127.0.0.1:{port}/webhook", "ACTIVE")
    ]
    yield World(server, github, port, folder)
    server.stop()
    fake.shutdown()


@pytest.fixture
def relay(world: World, tmp_path: Path) -> Iterator[RelayProcess]:
    world.github.dispatches.clear()
    world.github.fail = None
    process = RelayProcess(tmp_path, world.github.url, port=world.port).start()
    yield process
    process.stop()


def test_a_hand_alias_reaches_github_as_one_dispatch_within_seconds(
    world: World, relay: RelayProcess
) -> None:
    model = world.model()

    world.client.set_registered_model_alias(model, "champion", "2")

    found = wait_for("the alias reaches GitHub", lambda: world.dispatched(model), 30)
    assert found == [
        {
            "model": model,
            "event": "model_version_alias.created",
            "version": "2",
            "alias": "champion",
            "delivery_id": found[0]["delivery_id"],
        }
    ]
    wait_for("the relay settles", lambda: relay.health()[1]["pending"] == 0, 30)
    assert len(world.dispatched(model)) == 1


def test_an_apply_by_the_tool_dispatches_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # a window wider than the slowest apply of one model on a loaded machine (the tool's record
    # tag follows its alias and tag writes by a few calls)
    relay = RelayProcess(tmp_path, world.github.url, port=world.port, settle=30).start()
    try:
        _apply_dispatches_nothing(world, relay, monkeypatch, tmp_path)
    finally:
        relay.stop()


def _apply_dispatches_nothing(
    world: World, relay: RelayProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    world.github.dispatches.clear()
    model = world.model()
    world.client.set_registered_model_alias(model, "champion", "1")
    wait_for("the setup's own alias is dispatched", lambda: world.dispatched(model), 90)
    wait_for("the relay settles", lambda: relay.health()[1]["pending"] == 0, 90)
    world.github.dispatches.clear()
    own_before = relay.health()[1]["own"]

    _apply(
        tmp_path / "apply",
        f"""\
version: 1
models:
  {model}:
    aliases: {{champion: 2}}
    versions:
      - version: 2
        tags: {{validated_by: ci}}
""",
        world.server.uri,
        monkeypatch,
    )
    # a hand edit after the apply: once it is dispatched and nothing is pending, every event of
    # the apply has been received and judged
    sentinel = world.model(versions=1)
    world.client.set_model_version_tag(sentinel, "1", "note", "by hand")

    wait_for("the sentinel reaches GitHub", lambda: world.dispatched(sentinel), 90)
    wait_for(
        "the apply's events are judged the tool's own",
        lambda: (h := relay.health()[1])["pending"] == 0 and h["own"] >= own_before + 4,
        90,
    )
    assert world.dispatched(model) == []
    assert [p["model"] for _, b in world.github.dispatches for p in [b["client_payload"]]] == [
        sentinel
    ]


def _signed(body: bytes, secret: str, stamp: int | None = None) -> dict[str, str]:
    """Headers exactly as MLflow's delivery makes them (its own signing function)."""
    delivery = str(uuid.uuid4())
    timestamp = str(int(time.time()) if stamp is None else stamp)
    return {
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": timestamp,
        "X-MLflow-Signature": _generate_hmac_signature(
            secret, delivery, timestamp, body.decode("utf-8")
        ),
    }


def _alias_event(model: str) -> bytes:
    data = {"name": model, "alias": "champion", "version": "1"}
    payload = {"entity": "model_version_alias", "action": "created", "data": data}
    return json.dumps({**payload, "timestamp": datetime.now(UTC).isoformat()}).encode()


def test_forged_replayed_stale_and_oversized_deliveries_are_refused(
    world: World, relay: RelayProcess
) -> None:
    body = _alias_event("forged-model")

    forged = relay.post(body, _signed(body, "not-the-secret"))
    unsigned = relay.post(body, {})
    stale = relay.post(body, _signed(body, SECRET, stamp=int(time.time()) - 3600))
    headers = _signed(body, SECRET)
    first = relay.post(body, headers)
    replayed = relay.post(body, headers)
    oversized = _post_length(relay, 10 * 1024 * 1024)

    assert (forged, unsigned, stale, replayed, oversized) == (401, 401, 400, 409, 413)
    assert first == 200
    wait_for("the relay settles", lambda: relay.health()[1]["pending"] == 0, 30)
    health = relay.health()[1]
    assert (health["refused"], health["dispatched"]) == (5, 1)  # the one genuine delivery
    assert len(world.dispatched("forged-model")) == 1


def _post_length(relay: RelayProcess, length: int) -> int:
    """POST /webhook announcing a body of `length` bytes: the relay answers before reading it."""
    connection = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=30)
    try:
        connection.putrequest("POST", "/webhook")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_restart_of_the_relay_loses_nothing_queued(
    world: World, relay: RelayProcess, tmp_path: Path
) -> None:
    world.github.fail = 503  # GitHub is down: the event stays queued
    model = world.model()

    world.client.set_registered_model_alias(model, "challenger", "1")
    wait_for(
        "the relay tried GitHub and kept the event",
        lambda: (h := relay.health()[1])["pending"] == 1 and "503" in h["last_error"],
        30,
    )
    relay.stop(kill=True)  # a crash: nothing but the journal survives
    world.github.fail = None
    again = RelayProcess(tmp_path, world.github.url, port=world.port).start()
    try:
        found = wait_for("the queued event reaches GitHub", lambda: world.dispatched(model), 30)
        assert [(p["event"], p["alias"]) for p in found] == [
            ("model_version_alias.created", "challenger")
        ]
        wait_for("the relay settles", lambda: again.health()[1]["pending"] == 0, 30)
        assert len(world.dispatched(model)) == 1
    finally:
        again.stop()


def test_import_writes_the_webhooks_and_plan_on_the_import_is_empty(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "registry.yaml"

    imported = run_cli(capsys, "import", "--tracking-uri", world.server.uri, "--out", str(out))

    assert imported.code == 0, imported.err
    hooks = yaml.safe_load(out.read_text(encoding="utf-8"))["webhooks"]
    assert hooks == {
        "drift-relay": {
            "url": f"http://127.0.0.1:{world.port}/webhook",
            "events": [
                "model_version_alias.created",
                "model_version_alias.deleted",
                "model_version_tag.deleted",
                "model_version_tag.set",
            ],
            "description": "hand edits start a drift run",
            "status": "ACTIVE",
        }
    }
    planned = run_cli(
        capsys, "plan", str(out), "--tracking-uri", world.server.uri, "--detailed-exitcode"
    )
    assert planned.code == 0, planned.out + planned.err
