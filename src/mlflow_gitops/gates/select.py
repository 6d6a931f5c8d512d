"""Which planned changes are gated, against which baseline, and what a verdict depends on: pure
functions of the file, the plan and the registry state read up front (no registry, no MLflow)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from mlflow_gitops.gates.port import Side
from mlflow_gitops.observed import ModelState, RegistryState, VersionState
from mlflow_gitops.plan.changes import (
    CopyVersion,
    Plan,
    RegisterVersion,
    SetAlias,
    Target,
    TransitionStage,
)
from mlflow_gitops.record import read_record
from mlflow_gitops.spec.located import LoadedSpec
from mlflow_gitops.spec.model import (
    STAGES,
    EvaluateGate,
    EvaluateSpec,
    GateSet,
    RequireTagsGate,
    VersionSpec,
)


@dataclass(frozen=True)
class Candidate:
    """A version that a planned change makes enter a gated target."""

    model: str
    target: str
    target_of_change: Target
    side: Side
    version: VersionState | None  # None: registered by this plan
    entry: VersionSpec | None

    @property
    def label(self) -> str:
        """`v3`, or `new version (run 3f2a/model)`."""
        return self.target_of_change.label()

    def tags(self) -> dict[str, str]:
        """The user tags the version will carry: the registry's, with the file's on top."""
        have = dict(self.version.user_tags) if self.version else {}
        if self.entry is not None:
            have.update({k: v for k, v in (self.entry.tags or {}).items() if v is not None})
        return have


def canonical_target(key: str) -> str:
    """`production` -> `Production`; `alias:champion` stays."""
    for stage in STAGES:
        if key.lower() == stage.lower():
            return stage
    return key


def gated(
    loaded: LoadedSpec, plan: Plan, observed: RegistryState
) -> list[tuple[Candidate, GateSet]]:
    """Every planned change that makes a version enter a target with gates, in plan order."""
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
        if isinstance(c, RegisterVersion | CopyVersion)
        and c.model == model
        and c.entry == where.entry
    )
    if isinstance(register, CopyVersion):  # before the copy exists: the source version
        source = f"models:/{register.source_model}/{register.source_version}"
        return Side(source, None, register.source_registry)
    return Side(register.source, register.run_id)


def first_evaluate(gate_set: GateSet) -> EvaluateSpec | None:
    """The set's first evaluate gate: its data also serves the latency gate."""
    return next((g.evaluate for g in gate_set.checks if isinstance(g, EvaluateGate)), None)


def baseline(live: ModelState, candidate: Candidate, gate_set: GateSet) -> VersionState | None:
    """The current holder of the target (or of the evaluate gate's `baseline:`), never the
    candidate itself."""
    named = next(
        (
            g.evaluate.baseline
            for g in gate_set.checks
            if isinstance(g, EvaluateGate) and g.evaluate.baseline
        ),
        None,
    )
    wanted = canonical_target(named) if named else candidate.target
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


def was_holder(version: VersionState | None, target: str) -> bool:
    """The version held this stage before (a revert of a promotion): its history says so."""
    if version is None or target.startswith("alias:"):
        return False
    change = str(read_record(version.tags).get("change") or "")
    return f"-> {target} " in version.description + " " or f"-> {target}" in change


def data_of(gate_set: GateSet) -> list[str]:
    """The evaluation data the set reads, each once, sorted."""
    return sorted({g.evaluate.data for g in gate_set.checks if isinstance(g, EvaluateGate)})


def hooks_of(gate_set: GateSet) -> list[str]:
    """The prepare hooks the set's evaluate gates run, each once, sorted."""
    return sorted(
        {
            g.evaluate.prepare
            for g in gate_set.checks
            if isinstance(g, EvaluateGate)
            if g.evaluate.prepare
        }
    )


def inputs_key(
    candidate: Candidate,
    gate_set: GateSet,
    base: VersionState | None,
    data_digests: Mapping[str, str],
    identities: Mapping[str, str] | None = None,
    hooks: Mapping[str, str] | None = None,
) -> str:
    """Everything a verdict depends on: candidate (with its registry's identity when it lives in
    another: the source of a copy), baseline, data digests, prepare hooks' digests, the gate
    spec."""
    needs_tags = any(isinstance(g, RequireTagsGate) for g in gate_set.checks)
    side = candidate.side
    about = [side.uri, candidate.version.source if candidate.version else ""]
    if side.registry is not None:
        about.append((identities or {}).get(side.registry, side.registry))
    doc = {
        "candidate": about,
        "baseline": [base.version, base.source] if base else None,
        "data": dict(data_digests),
        "gates": gate_set.model_dump(mode="json"),
        "tags": sorted(candidate.version.user_tags.items())
        if needs_tags and candidate.version
        else None,
    }
    if hooks:  # an edited hook evaluates again (absent without hooks: older records stay valid)
        doc["hooks"] = dict(hooks)
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:24]
