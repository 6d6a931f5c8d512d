"""The relay's queue and worker in this process, against the GitHub API fake (no MLflow): a full
queue answers 503 (MLflow retries), a refusal from GitHub gives the event up and says why, and
the tool's record arriving within the window keeps its alias move from GitHub."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlflow_gitops.relay.service import Config, Relay
from mlflow_gitops.relay.signature import sign
from tests.github.fake_github import TOKEN, FakeGitHub, serve
from tests.relay.harness import REPOSITORY, wait_for

SECRET = "relay-service-secret"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    server = serve(fake)
    yield fake
    server.shutdown()


def delivery(n: int, entity: str, data: dict[str, str]) -> tuple[dict[str, str], bytes]:
    action = "set" if entity.endswith("_tag") else "created"
    body = json.dumps({"entity": entity, "action": action, "data": data}).encode()
    stamp = str(int(time.time()))
    headers = {
        "X-MLflow-Delivery-Id": f"d-{n}",
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": sign(SECRET, f"d-{n}", stamp, body),
    }
    return headers, body


def relay_for(tmp_path: Path, github: FakeGitHub, token: str = TOKEN, **options: float) -> Relay:
    config = Config(
        REPOSITORY, SECRET, token, tmp_path / "journal.jsonl", api_url=github.url, **options
    )
    return Relay(config)


ALIAS = {"name": "m", "alias": "champion", "version": "2"}


def test_a_full_queue_answers_503_so_that_mlflow_retries(
    tmp_path: Path, github: FakeGitHub
) -> None:
    relay = relay_for(tmp_path, github, max_queue=1)  # the worker is not started

    first = relay.receive(*delivery(1, "model_version_alias", ALIAS))
    second = relay.receive(*delivery(2, "model_version_alias", ALIAS))

    assert (first[0], second[0]) == (200, 503)
    assert relay.health()[1]["pending"] == 1
    relay.stop()


def test_a_refusal_from_github_gives_the_event_up_and_says_why(
    tmp_path: Path, github: FakeGitHub
) -> None:
    relay = relay_for(tmp_path, github, token="ghs_revoked", settle=0)
    relay.start()
    try:
        assert relay.receive(*delivery(1, "model_version_alias", ALIAS))[0] == 200
        health = wait_for("the event is given up", lambda: relay.health()[1]["failed"] == 1, 30)
        assert health
        status = relay.health()[1]
        assert "GitHub answered 401" in status["last_error"]
        assert "Bad credentials" in status["last_error"]
        assert github.dispatches == []
    finally:
        relay.stop()
    assert '"result":"failed"' in (tmp_path / "journal.jsonl").read_text()


def test_the_tools_record_keeps_its_alias_move_from_github_and_a_persons_goes_through(
    tmp_path: Path, github: FakeGitHub
) -> None:
    relay = relay_for(tmp_path, github, settle=2)
    relay.start()
    try:
        record = json.dumps({"change": "alias champion", "commit": "1a2b3c4"})
        tool_record = {"name": "m", "version": "2", "key": "mlflow_gitops.record"}
        assert relay.receive(*delivery(1, "model_version_alias", ALIAS))[0] == 200
        tag = delivery(2, "model_version_tag", {**tool_record, "value": record})
        assert relay.receive(*tag)[0] == 200
        person = {"name": "m", "alias": "challenger", "version": "1"}
        assert relay.receive(*delivery(3, "model_version_alias", person))[0] == 200

        wait_for("the person's alias is dispatched", lambda: github.dispatches, 30)
        wait_for("nothing is pending", lambda: relay.health()[1]["pending"] == 0, 30)
        assert [b["client_payload"]["alias"] for _, b in github.dispatches] == ["challenger"]
        assert relay.health()[1]["own"] == 2  # the record tag and the alias it names
    finally:
        relay.stop()
