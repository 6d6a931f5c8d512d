"""Never score a version twice on the same data: a version's metrics on a data set are a function
of (its artifacts, the data's identity, the prepare hook's digest, the metric definitions), so an
evaluation records them on each version it scored, and a later gate that needs the same scores
(for the baseline or the candidate) reads them instead of loading and scoring the model.

Pure apart from the evidence port: what to read, what to score, and what to record.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mlflow_gitops import record
from mlflow_gitops.gates.cache import MAX_TAG, GateRecord
from mlflow_gitops.gates.metrics import DEFINITIONS
from mlflow_gitops.gates.port import Evaluation, Evidence, Side
from mlflow_gitops.observed import VersionState
from mlflow_gitops.plan.gates import Reused
from mlflow_gitops.spec.model import EvaluateSpec

SHORT = 12  # characters of a digest shown to the reader


@dataclass(frozen=True)
class Need:
    """One evaluation a gate needs: the spec, its data's and hook's identities, and the two
    sides (a version of this registry, or None for a side that cannot be recorded)."""

    model: str
    spec: EvaluateSpec
    data: str  # the data's identity (evidence.data_digest)
    hook: str  # the prepare hook's digest, "" without one
    candidate: Side
    candidate_version: VersionState | None  # None: not a version of this registry yet
    baseline: Side | None
    baseline_version: VersionState | None
    latency_rows: int  # 0: nothing timed


@dataclass(frozen=True)
class Scored:
    """The evaluation, which sides came from records, and the records of the sides scored."""

    evaluation: Evaluation
    reused: tuple[Reused, ...] = ()
    records: tuple[GateRecord, ...] = ()


def slot(spec: EvaluateSpec) -> str:
    """The tag slot of one data location and metric set (a stale value is overwritten)."""
    doc = [spec.data, sorted(spec.metrics), spec.target, spec.preprocessor, spec.prepare]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16]


def score_key(model: str, version: VersionState, spec: EvaluateSpec, data: str, hook: str) -> str:
    """Everything the version's metrics on this data are a function of: the version's artifacts
    (a version registered anew under the same number has another source, run or creation time),
    the data's identity, the hook's digest, the metric names and their definitions."""
    doc = {
        "version": [model, version.version, version.source, version.run_id, version.created_at],
        "data": data,
        "hook": [spec.prepare, hook],
        "target": spec.target,
        "preprocessor": spec.preprocessor,
        "metrics": sorted(spec.metrics),
        "definitions": DEFINITIONS,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:24]


def recorded(
    model: str, version: VersionState | None, need: Need, latency: bool
) -> record.Scores | None:
    """The version's recorded scores for this need, when computed from these very inputs (and
    timed on the same batch size when `latency` is needed)."""
    if version is None:
        return None
    found = record.decode_scores(version.tags.get(record.scores_tag(slot(need.spec))))
    if found is None or found.key != score_key(model, version, need.spec, need.data, need.hook):
        return None
    if not set(need.spec.metrics) <= set(found.metrics):
        return None
    if latency and found.latency_rows != need.latency_rows:
        return None
    return found


def score(need: Need, evidence: Evidence, folder: Path, now: datetime) -> Scored:
    """The evaluation of `need`, scoring only the sides without recorded scores."""
    timed = need.latency_rows > 0
    cand = recorded(need.model, need.candidate_version, need, latency=timed)
    base = recorded(need.model, need.baseline_version, need, latency=False)
    reused = [_reused("candidate", need.candidate_version, cand)]
    if need.baseline is not None:
        reused.append(_reused("baseline", need.baseline_version, base))
    shown = tuple(r for r in reused if r is not None)
    rows = need.latency_rows or None
    if cand is not None and (need.baseline is None or base is not None):
        evaluation = _combine(cand, base)  # nothing loaded, nothing scored
        return Scored(evaluation, shown)
    if cand is not None:  # only the baseline is scored, as the sole side of an evaluation
        assert need.baseline is not None
        alone = evidence.evaluate(need.spec, folder, need.baseline, None, rows)
        fresh = _from_evaluation(alone, "candidate", timed)
        evaluation = _combine(cand, fresh)
        written = _records(need, now, baseline=fresh)
        return Scored(evaluation, shown, written)
    if need.baseline is not None and base is None:  # both sides in one pass
        evaluation = evidence.evaluate(need.spec, folder, need.candidate, need.baseline, rows)
        written = _records(
            need,
            now,
            candidate=_from_evaluation(evaluation, "candidate", timed),
            baseline=_from_evaluation(evaluation, "baseline", timed),
        )
        return Scored(evaluation, shown, written)
    alone = evidence.evaluate(need.spec, folder, need.candidate, None, rows)
    fresh = _from_evaluation(alone, "candidate", timed)
    written = _records(need, now, candidate=fresh)
    return Scored(_combine(fresh, base), shown, written)


def _reused(side: str, version: VersionState | None, found: record.Scores | None) -> Reused | None:
    if found is None or version is None:
        return None
    return Reused(
        side="candidate" if side == "candidate" else "baseline",
        version=version.version,
        scored_at=found.at,
        data=found.inputs.get("data", ""),
        hook=found.inputs.get("hook", ""),
        rows=found.rows,
    )


def _from_evaluation(evaluation: Evaluation, side: str, timed: bool) -> record.Scores:
    """One side of an evaluation as scores (no key, time or inputs yet)."""
    metrics = evaluation.candidate if side == "candidate" else (evaluation.baseline or {})
    latency = {
        q: v
        for q in ("p50_ms", "p95_ms")
        if (v := evaluation.latency_ms.get(f"{side}_{q}")) is not None
    }
    return record.Scores(
        key="",
        rows=evaluation.rows,
        metrics=dict(metrics),
        at="",
        latency_ms=latency if timed else {},
    )


def _combine(candidate: record.Scores, baseline: record.Scores | None) -> Evaluation:
    """An evaluation of both sides from their scores (recorded or just computed)."""
    latency = {f"candidate_{q}": v for q, v in candidate.latency_ms.items()}
    if baseline is not None:
        latency.update({f"baseline_{q}": v for q, v in baseline.latency_ms.items()})
    return Evaluation(
        rows=candidate.rows,
        candidate=dict(candidate.metrics),
        baseline=dict(baseline.metrics) if baseline is not None else None,
        latency_ms=latency,
    )


def _records(
    need: Need,
    now: datetime,
    candidate: record.Scores | None = None,
    baseline: record.Scores | None = None,
) -> tuple[GateRecord, ...]:
    """The scores to record on each freshly scored version of this registry."""
    out = []
    for version, fresh in ((need.candidate_version, candidate), (need.baseline_version, baseline)):
        if version is None or fresh is None:
            continue
        key = score_key(need.model, version, need.spec, need.data, need.hook)
        inputs = {"data": need.data[:SHORT]}
        if need.hook:
            inputs["hook"] = need.hook[:SHORT]
        value = record.encode_scores(
            record.Scores(
                key=key,
                rows=fresh.rows,
                metrics=fresh.metrics,
                at=now.isoformat(timespec="seconds"),
                inputs=inputs,
                latency_ms=fresh.latency_ms,
                latency_rows=need.latency_rows if fresh.latency_ms else 0,
            )
        )
        if len(value) <= MAX_TAG:  # too large to record: the next gate scores it again
            tag = record.scores_tag(slot(need.spec))
            out.append(GateRecord(need.model, version.version, tag, value))
    return tuple(out)
