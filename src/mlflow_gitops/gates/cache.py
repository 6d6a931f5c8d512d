"""The gate record: a target's gate results, cached on the candidate version as one tag with a
digest of their inputs, so that a later plan with the same inputs loads no model.

The tag's key and JSON format are record/'s (gate_tag, encode/decode_gate_record); the three
functions at the top adapt them to GateResult, and everything else goes through those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from mlflow_gitops import record
from mlflow_gitops.plan.gates import GateResult

MAX_TAG = record.MAX_TAG_VALUE - 100  # a version tag holds 5,000 characters on older servers


def gate_record_key(target: str) -> str:
    """The version tag that holds the gate results of `target` (`Production`, `alias:champion`)."""
    return record.gate_tag(target)


def encode_gate_record(inputs: str, results: Sequence[GateResult], at: datetime) -> str:
    """The tag value: the inputs digest, the overall verdict, when, and every result."""
    return record.encode_gate_record(
        record.GateRecord(
            inputs=inputs,
            verdict="pass" if all(r.passed for r in results) else "fail",
            at=at.isoformat(timespec="seconds"),
            results=tuple(r.model_dump(mode="json", exclude={"cached", "inputs"}) for r in results),
        )
    )


def decode_gate_record(text: str) -> tuple[str, tuple[GateResult, ...]] | None:
    """(inputs digest, results marked cached), or None for a value this tool cannot read."""
    decoded = record.decode_gate_record(text)
    if decoded is None or not decoded.inputs:
        return None
    try:
        results = tuple(
            GateResult.model_validate({**r, "cached": True, "inputs": decoded.inputs})
            for r in decoded.results
        )
    except ValueError:
        return None
    return decoded.inputs, results


@dataclass(frozen=True)
class GateRecord:
    """A gate record the run wants written: the orchestrator writes it (or says why it could not)."""

    model: str
    version: int
    key: str
    value: str


def cached_results(
    tags: Mapping[str, str], target: str, inputs: str
) -> tuple[GateResult, ...] | None:
    """The recorded results of `target` when they were computed from these very inputs."""
    raw = tags.get(gate_record_key(target))
    decoded = decode_gate_record(raw) if raw else None
    if decoded is None or decoded[0] != inputs:
        return None
    return decoded[1]


def gate_record(
    model: str, version: int, target: str, inputs: str, results: Sequence[GateResult], at: datetime
) -> GateRecord:
    """The record of `target`'s results on the candidate version."""
    return GateRecord(
        model, version, gate_record_key(target), encode_gate_record(inputs, results, at)
    )


def oversize(record: GateRecord) -> str | None:
    """Why the record cannot be written as a tag, or None when it fits."""
    if len(record.value) <= MAX_TAG:
        return None
    return (
        f"the record is {len(record.value):,} characters, over the {MAX_TAG:,} a version tag holds"
    )


def not_recorded(record: GateRecord, why: str) -> str:
    """The plan's note for a record that was not written: the verdicts stand, uncached."""
    return (
        f"gate results not recorded at {record.model}/{record.version}: {why}; "
        "the next plan will evaluate again"
    )
