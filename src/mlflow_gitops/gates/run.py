"""Run the gates of every planned change that makes a version enter a gated stage or alias.

Results are recorded on the candidate version (tag mlflow_gitops.gate.<target>) with a digest of
their inputs; a later plan with the same inputs reuses them without loading any model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from mlflow_gitops.gates.evidence import Evidence, GateError, Side
from mlflow_gitops.gates.result import Check, GateResult
from mlflow_gitops.gates.verdict import bound_check, compare, decide
from mlflow_gitops.observed import ModelState, RegistryState, VersionState
from mlflow_gitops.plan.changes import Plan, RegisterVersion, SetAlias, Target, TransitionStage
from mlflow_gitops.record import GATE_TAG_PREFIX, read_record
from mlflow_gitops.registry.port import RegistryPort
from mlflow_gitops.spec.load import LoadedSpec
from mlflow_gitops.spec.model import (
    STAGES,
    EvaluateGate,
    Gate,
    GateSet,
    LatencyGate,
    MetricGate,
    RequireSignatureGate,
    RequireTagsGate,
    SizeGate,
    VersionSpec,
)

MAX_TAG = 4900


@dataclass(frozen=True)
class Candidate:
    model: str
    target: str
    target_of_change: Target
    side: Side
    version: VersionState | None  # None: registered by this plan
    entry: VersionSpec | None


def canonical_target(key: str) -> str:
    """`production` -> `Production`; `alias:champion` stays."""
    for stage in STAGES:
        if key.lower() == stage.lower():
            return stage
    return key


def run_gates(
    loaded: LoadedSpec,
    plan: Plan,
    observed: RegistryState,
    evidence: Evidence,
    registry: RegistryPort | None,
    now: datetime,
) -> Plan:
    """The plan with gate results added, and models whose gates failed blocked."""
    results: list[GateResult] = []
    blocked = {m: list(r) for m, r in plan.blocked.items()}
    for candidate, gate_set in _gated(loaded, plan, observed):
        live = observed.models.get(candidate.model) or ModelState(name=candidate.model)
        gate_results = _run_set(loaded, candidate, gate_set, live, evidence, registry, now)
        results.extend(gate_results)
        for r in gate_results:
            if not r.passed:
                blocked.setdefault(candidate.model, []).append(
                    f"gate {r.gate} for {r.target} failed on {r.version}: {r.message}"
                )
    return plan.model_copy(
        update={
            "gates": tuple(results),
            "blocked": {m: tuple(r) for m, r in sorted(blocked.items())},
        }
    )


def _gated(
    loaded: LoadedSpec, plan: Plan, observed: RegistryState
) -> list[tuple[Candidate, GateSet]]:
    out = []
    for change in plan.changes:
        model_spec = loaded.spec.models.get(change.model)
        if model_spec is None or not model_spec.gates:
            continue
        gates = {canonical_target(k): v for k, v in model_spec.gates.items()}
        if isinstance(change, TransitionStage) and change.after in gates:
            target, where = change.after, change.target
        elif isinstance(change, SetAlias) and f"alias:{change.alias}" in gates:
            target, where = f"alias:{change.alias}", change.target
        else:
            continue
        live = observed.models.get(change.model)
        version = live.version(where.version) if live and where.version is not None else None
        entry = _entry(model_spec.versions, where, version)
        side = _side(change.model, where, version, plan)
        out.append((Candidate(change.model, target, where, side, version, entry), gates[target]))
    return out


def _entry(
    entries: list[VersionSpec], where: Target, version: VersionState | None
) -> VersionSpec | None:
    for e in entries:
        if (where.version is not None and e.version == where.version) or (
            where.entry and e.key == where.entry
        ):
            return e
    return None


def _side(model: str, where: Target, version: VersionState | None, plan: Plan) -> Side:
    if version is not None:
        return Side(f"models:/{model}/{version.version}", version.run_id)
    register = next(
        c
        for c in plan.changes
        if isinstance(c, RegisterVersion) and c.model == model and c.entry == where.entry
    )
    return Side(register.source, register.run_id)


def _baseline(
    live: ModelState, target: str, candidate: Candidate, named: str | None
) -> VersionState | None:
    """The current holder of the target (or of `baseline:`), never the candidate itself."""
    wanted = canonical_target(named) if named else target
    if wanted.isdigit():
        return live.version(int(wanted))
    if wanted.startswith("alias:"):
        number = live.aliases.get(wanted[len("alias:") :])
        holder = live.version(number) if number is not None else None
    else:
        holders = [v for v in live.versions if v.stage == wanted]
        holder = max(holders, key=lambda v: v.version) if holders else None
    if (
        holder is not None
        and candidate.version is not None
        and holder.version == candidate.version.version
    ):
        return None
    return holder


def _was_holder(version: VersionState | None, target: str) -> bool:
    """The version held this stage before (a revert of a promotion): its history says so."""
    if version is None or target.startswith("alias:"):
        return False
    change = str(read_record(version.tags).get("change") or "")
    return f"-> {target} " in version.description + " " or f"-> {target}" in change


def _run_set(
    loaded: LoadedSpec,
    candidate: Candidate,
    gate_set: GateSet,
    live: ModelState,
    evidence: Evidence,
    registry: RegistryPort | None,
    now: datetime,
) -> list[GateResult]:
    label = candidate.target_of_change.label()
    if gate_set.on_rollback == "skip" and _was_holder(candidate.version, candidate.target):
        return [
            GateResult(
                model=candidate.model,
                target=candidate.target,
                version=label,
                gate="rollback",
                verdict="pass",
                message=f"{label} held {candidate.target} before: gates skipped (on_rollback: skip)",
            )
        ]
    if candidate.version is None and not candidate.side.uri.startswith(("runs:/", "models:/")):
        # gates unpickle models: only through the configured registry and its runs, never from
        # an arbitrary location named in the file
        untrusted = GateError(
            f"the gates load models only through the configured registry; {candidate.side.uri} "
            "is not registered yet",
            "register the version first (without a gated stage), then promote it in a second change",
        )
        return [_error(candidate, label, "evaluate", untrusted, None)]
    named = next(
        (
            g.evaluate.baseline
            for g in gate_set.checks
            if isinstance(g, EvaluateGate) and g.evaluate.baseline
        ),
        None,
    )
    baseline = _baseline(live, candidate.target, candidate, named)
    base_side = (
        Side(f"models:/{candidate.model}/{baseline.version}", baseline.run_id) if baseline else None
    )
    try:
        inputs = _inputs(loaded, candidate, gate_set, baseline, evidence)
    except GateError as exc:
        return [_error(candidate, label, "evaluate", exc, baseline)]
    cached = _cached(candidate, inputs)
    if cached is not None:
        return cached
    results = [
        _run_one(loaded, candidate, gate, gate_set, base_side, baseline, evidence, label)
        for gate in gate_set.checks
    ]
    results = [r.model_copy(update={"inputs": inputs}) for r in results]
    if registry is not None and candidate.version is not None:
        _record(registry, candidate, results, inputs, now)
    return results


def _inputs(
    loaded: LoadedSpec,
    candidate: Candidate,
    gate_set: GateSet,
    baseline: VersionState | None,
    evidence: Evidence,
) -> str:
    """Everything a verdict depends on: candidate, baseline, data digests, the gate spec."""
    data = sorted({g.evaluate.data for g in gate_set.checks if isinstance(g, EvaluateGate)})
    needs_tags = any(isinstance(g, RequireTagsGate) for g in gate_set.checks)
    doc = {
        "candidate": [candidate.side.uri, candidate.version.source if candidate.version else ""],
        "baseline": [baseline.version, baseline.source] if baseline else None,
        "data": {d: evidence.data_digest(d, loaded.folder) for d in data},
        "gates": gate_set.model_dump(mode="json"),
        "tags": sorted(candidate.version.user_tags.items())
        if needs_tags and candidate.version
        else None,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:24]


def _cached(candidate: Candidate, inputs: str) -> list[GateResult] | None:
    if candidate.version is None:
        return None
    raw = candidate.version.tags.get(GATE_TAG_PREFIX + candidate.target)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if data.get("inputs") != inputs or "results" not in data:
        return None
    try:
        return [
            GateResult.model_validate({**r, "cached": True, "inputs": inputs})
            for r in data["results"]
        ]
    except ValueError:
        return None


def _record(
    registry: RegistryPort,
    candidate: Candidate,
    results: list[GateResult],
    inputs: str,
    now: datetime,
) -> None:
    assert candidate.version is not None
    payload = {
        "inputs": inputs,
        "verdict": "pass" if all(r.passed for r in results) else "fail",
        "at": now.isoformat(timespec="seconds"),
        "results": [r.model_dump(mode="json", exclude={"cached", "inputs"}) for r in results],
    }
    text = json.dumps(payload, separators=(",", ":"))
    if len(text) > MAX_TAG:
        return  # too large to cache on old servers; the gate simply runs again next time
    try:
        registry.set_version_tag(
            candidate.model, candidate.version.version, GATE_TAG_PREFIX + candidate.target, text
        )
    except Exception:
        return


def _error(
    candidate: Candidate, label: str, gate: str, exc: GateError, baseline: VersionState | None
) -> GateResult:
    hint = f" ({exc.hint})" if exc.hint else ""
    return GateResult(
        model=candidate.model,
        target=candidate.target,
        version=label,
        gate=gate,
        verdict="fail",
        checks=(Check(name=gate, verdict="error", message=exc.message),),
        baseline_version=baseline.version if baseline else None,
        message=exc.message + hint,
    )


def _run_one(
    loaded: LoadedSpec,
    candidate: Candidate,
    gate: Gate,
    gate_set: GateSet,
    base_side: Side | None,
    baseline: VersionState | None,
    evidence: Evidence,
    label: str,
) -> GateResult:
    kind = type(gate).__name__
    try:
        checks, kind = _checks(loaded, candidate, gate, gate_set, base_side, evidence)
    except GateError as exc:
        return _error(candidate, label, _kind(gate), exc, baseline)
    verdict = decide(checks)
    failed = [c for c in checks if c.verdict in ("fail", "error")]
    message = "; ".join(_explain(c) for c in failed) if failed else "passed"
    return GateResult(
        model=candidate.model,
        target=candidate.target,
        version=label,
        gate=kind,
        verdict="pass" if verdict == "pass" else "fail",
        checks=tuple(checks),
        baseline_version=baseline.version if baseline else None,
        message=message,
    )


def _kind(gate: Gate) -> str:
    return {
        MetricGate: "metric",
        EvaluateGate: "evaluate",
        SizeGate: "max_size_mb",
        LatencyGate: "latency",
        RequireTagsGate: "require_tags",
        RequireSignatureGate: "require_signature",
    }[type(gate)]


def _explain(c: Check) -> str:
    if c.message:
        return f"{c.name}: {c.message}"
    base = f" (baseline {c.baseline:.6g})" if c.baseline is not None else ""
    return f"{c.name} {c.candidate:.6g}{base} not {c.bound}"


def _checks(
    loaded: LoadedSpec,
    candidate: Candidate,
    gate: Gate,
    gate_set: GateSet,
    base_side: Side | None,
    evidence: Evidence,
) -> tuple[list[Check], str]:
    match gate:
        case MetricGate(metric=metric, max=maximum, min=minimum):
            value = evidence.run_metric(candidate.side.run_id, metric)
            if value is None:
                raise GateError(
                    f"run {candidate.side.run_id} never logged the metric {metric!r}",
                    "log it with the run, or change the gate",
                )
            return [bound_check(metric, value, maximum=maximum, minimum=minimum)], "metric"
        case EvaluateGate(evaluate=spec):
            # with a latency gate in the set, one pass over the data serves both gates
            latency = next((g.latency for g in gate_set.checks if isinstance(g, LatencyGate)), None)
            first = next((g.evaluate for g in gate_set.checks if isinstance(g, EvaluateGate)), None)
            rows = latency.batch_rows if latency is not None and first == spec else None
            result = evidence.evaluate(spec, loaded.folder, candidate.side, base_side, rows)
            checks = []
            for name, threshold in spec.metrics.items():
                base_value = result.baseline.get(name) if result.baseline else None
                checks.extend(
                    compare(
                        name,
                        threshold,
                        result.candidate.get(name),
                        base_value,
                        spec.on_missing_baseline,
                    )
                )
            checks.append(
                Check(name="rows", candidate=float(result.rows), bound="evaluated", verdict="pass")
            )
            return checks, "evaluate"
        case SizeGate(max_size_mb=size_limit):
            return [
                bound_check("size_mb", evidence.model_size_mb(candidate.side), maximum=size_limit)
            ], "max_size_mb"
        case LatencyGate(latency=spec):
            evaluate = next(
                (g.evaluate for g in gate_set.checks if isinstance(g, EvaluateGate)), None
            )
            if evaluate is None:
                raise GateError(
                    "the latency gate times predict on the evaluate gate's data; add an evaluate gate"
                )
            result = evidence.evaluate(
                evaluate, loaded.folder, candidate.side, base_side, spec.batch_rows
            )
            lat = result.latency_ms
            checks = []
            for q, limit in (("p50", spec.p50_ms), ("p95", spec.p95_ms)):
                measured = lat.get(f"candidate_{q}_ms")
                check = (
                    bound_check(f"{q}_ms", measured, maximum=limit)
                    if limit
                    else Check(name=f"{q}_ms", candidate=measured, verdict="pass")
                )
                checks.append(check.model_copy(update={"baseline": lat.get(f"baseline_{q}_ms")}))
            return checks, "latency"
        case RequireTagsGate(require_tags=keys):
            have = dict(candidate.version.user_tags) if candidate.version else {}
            if candidate.entry is not None:
                have.update(
                    {k: v for k, v in (candidate.entry.tags or {}).items() if v is not None}
                )
            return [
                Check(
                    name=f"tag {k}",
                    bound="present",
                    verdict="pass" if have.get(k) else "fail",
                    message="" if have.get(k) else "missing",
                )
                for k in keys
            ], "require_tags"
        case RequireSignatureGate(require_signature=required):
            if not required:
                return [
                    Check(name="signature", verdict="pass", bound="not required")
                ], "require_signature"
            ok = evidence.has_signature(candidate.side)
            return [
                Check(
                    name="signature",
                    bound="present",
                    verdict="pass" if ok else "fail",
                    message="" if ok else "the model has no signature",
                )
            ], "require_signature"
    raise GateError(f"unknown gate {gate!r}")
