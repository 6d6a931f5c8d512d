"""MLflow's webhook signature, checked exactly as MLflow makes it (mlflow/webhooks/delivery.py):
`X-MLflow-Signature: v1,<base64 HMAC-SHA256(secret, "<delivery id>.<timestamp>.<body>")>`, with
`X-MLflow-Delivery-Id` and `X-MLflow-Timestamp` (Unix seconds). Pure: no mlflow here."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_HEADER = "X-MLflow-Delivery-Id"
VERSION = "v1"
TOLERANCE_S = 300  # a delivery older or newer than this is refused (Standard Webhooks' 5 minutes)
MAX_ID = 200


@dataclass(frozen=True)
class Refused(Exception):
    """Why a delivery is refused, and the HTTP status that says so."""

    status: int
    reason: str


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The header MLflow sends for this delivery."""
    content = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), content, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode('ascii')}"


def verify(
    headers: Mapping[str, str], body: bytes, secret: str, now: float, tolerance: float = TOLERANCE_S
) -> tuple[str, int]:
    """(delivery id, timestamp) of a delivery whose signature and timestamp hold; Refused
    otherwise. The signature is compared in constant time, before the timestamp is trusted."""
    delivery = headers.get(DELIVERY_HEADER, "")
    stamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not delivery or not stamp or not given:
        raise Refused(401, "unsigned delivery (X-MLflow-Delivery-Id, -Timestamp, -Signature)")
    if len(delivery) > MAX_ID or not stamp.isdigit():
        raise Refused(400, "malformed delivery id or timestamp")
    expected = sign(secret, delivery, stamp, body)
    # several signatures may be given, space-separated (Standard Webhooks); one must match
    if not any(hmac.compare_digest(expected, s) for s in given.split()):
        raise Refused(401, "bad signature")
    if abs(now - int(stamp)) > tolerance:
        raise Refused(400, f"timestamp outside {int(tolerance)} s of the relay's clock")
    return delivery, int(stamp)
