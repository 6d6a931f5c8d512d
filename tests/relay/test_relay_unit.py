"""The relay's pure parts: MLflow's signature checked as MLflow makes it, the tool's own events
told from a person's, and the journal's replay after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from mlflow_gitops.relay.journal import Journal, compact, replay
from mlflow_gitops.relay.own import Event, Marks, dispatch_payload, mark_of, named_by, tool_tag
from mlflow_gitops.relay.signature import Refused, sign, verify

SECRET = "whsec-test"
BODY = b'{"entity": "model_version_alias", "action": "created", "data": {"name": "m"}}'


def headers(delivery: str = "d-1", stamp: int = 1_000, secret: str = SECRET) -> dict[str, str]:
    signature = _generate_hmac_signature(secret, delivery, str(stamp), BODY.decode())
    return {
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": str(stamp),
        "X-MLflow-Signature": signature,
    }


def test_the_signature_is_the_one_mlflow_makes() -> None:
    assert sign(SECRET, "d-1", "1000", BODY) == headers()["X-MLflow-Signature"]
    assert verify(headers(), BODY, SECRET, now=1_000) == ("d-1", 1_000)


@pytest.mark.parametrize(
    ("given", "now", "status", "reason"),
    [
        (headers(secret="wrong"), 1_000, 401, "bad signature"),
        ({}, 1_000, 401, "unsigned delivery"),
        (headers(stamp=1_000), 1_000 + 301, 400, "timestamp outside 300 s"),
        (headers(stamp=1_000), 1_000 - 301, 400, "timestamp outside 300 s"),
        ({**headers(), "X-MLflow-Timestamp": "soon"}, 1_000, 400, "malformed"),
    ],
    ids=["forged", "unsigned", "too-old", "from-the-future", "malformed-timestamp"],
)
def test_a_delivery_that_does_not_hold_is_refused(
    given: dict[str, str], now: float, status: int, reason: str
) -> None:
    with pytest.raises(Refused) as refused:
        verify(given, BODY, SECRET, now)
    assert refused.value.status == status
    assert reason in refused.value.reason


def test_a_body_changed_in_transit_is_refused() -> None:
    with pytest.raises(Refused, match="bad signature"):
        verify(headers(), BODY.replace(b'"m"', b'"n"'), SECRET, now=1_000)


def event(name: str, data: dict[str, str], at: float = 100.0, delivery: str = "d") -> Event:
    return Event(delivery, name, {"name": "m", **data}, at)


def record(version: str, change: str, at: float = 101.0) -> Event:
    value = json.dumps({"change": change, "commit": "1a2b3c4"})
    data = {"version": version, "key": "mlflow_gitops.record", "value": value}
    return event("model_version_tag.set", data, at)


ALIAS = event("model_version_alias.created", {"alias": "champion", "version": "2"})


@pytest.mark.parametrize(
    ("happened", "change", "own"),
    [
        (ALIAS, "tag validated_by; alias champion", True),
        (ALIAS, "alias challenger", False),
        (event("model_version_alias.created", {"alias": "champion", "version": "3"}), "alias champion", False),
        (event("model_version_alias.deleted", {"alias": "old"}), "alias old removed", True),
        (event("model_version_tag.set", {"key": "team", "version": "2"}), "tag team", True),
        (event("model_version_tag.set", {"key": "team", "version": "2"}), "alias team", False),
        (event("model_version_tag.deleted", {"key": "team", "version": "2"}), "tag team deleted", True),
        (event("model_version.created", {"version": "2"}), "registered from runs:/a/model", True),
        (event("model_version.created", {"version": "2"}), "copy dev:m/3 -> prod", True),
        (event("registered_model.created", {}), "registered from runs:/a/model", True),
    ],
)  # fmt: skip
def test_an_event_the_tools_record_names_is_its_own(
    happened: Event, change: str, own: bool
) -> None:
    mark = mark_of(record("2", change))
    assert mark is not None
    assert named_by(happened, mark) is own


def test_the_tools_own_tags_are_its_own_and_a_persons_are_not() -> None:
    assert tool_tag(record("2", "alias champion"))
    gate = event("model_version_tag.set", {"key": "mlflow_gitops.gate.Production"})
    assert tool_tag(gate)
    assert not tool_tag(event("model_version_tag.set", {"key": "team", "version": "1"}))
    assert not tool_tag(ALIAS)


def test_a_record_counts_only_within_the_window_on_either_side() -> None:
    marks = Marks(keep=10)
    mark = mark_of(record("2", "alias champion", at=105.0))
    assert mark is not None
    marks.add(mark)
    assert marks.names(ALIAS, now=106)  # the record came after the alias
    later = Event("d2", ALIAS.event, ALIAS.data, 130.0)
    assert not marks.names(later, now=131)  # a person moved it again, long after


def test_the_dispatch_names_the_model_and_the_event_in_at_most_ten_keys() -> None:
    body = dispatch_payload(ALIAS)
    assert body == {
        "event_type": "mlflow-registry-event",
        "client_payload": {
            "model": "m",
            "event": "model_version_alias.created",
            "version": "2",
            "alias": "champion",
            "delivery_id": "d",
        },
    }


def test_the_journal_gives_back_what_was_not_done_even_after_a_torn_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "relay.jsonl"
    journal = Journal(path)
    first, second = ALIAS, Event("d2", ALIAS.event, ALIAS.data, 101.0)
    journal.accept(first, 100)
    journal.accept(second, 101)
    journal.done("d", "dispatched")
    journal.close()
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"op": "accept", "id": "d3", "ev')  # the crash cut this line short

    entries = replay(path)

    assert [(e.event.delivery_id, e.done) for e in entries] == [
        ("d", "dispatched"),
        ("d2", None),
    ]
    compact(path, entries, keep_after=100.5)  # only the pending one, and the recent ones
    assert [(e.event.delivery_id, e.done) for e in replay(path)] == [("d2", None)]
