"""Watch every write of an apply and check the state it leaves; check the end state against the
scenario's oracle.

What is asserted after every write (see docs/reliability.md for why exactly this):

- holders: a guarded stage (Staging, Production) that had a holder keeps one, unless the file
  itself leaves it empty at the end, or the write is the one unavoidable case: a swap, where the
  last holder of Staging moves to Production while every version that is to hold Staging at the
  end is still in Production. Production is never the stage left empty.
- aliases: an alias that pointed at a version keeps pointing at one, unless the file deletes it.
- reach: only models of the file that are not blocked are written.
- max_per_stage: recorded, not asserted here, as `over_limit`: promote-then-archive holds two
  Production versions for a moment (test_convergence.py asserts it separately, as a known bug).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlflow_gitops.errors import RegistryError
from mlflow_gitops.observed import ModelState, RegistryState
from mlflow_gitops.record import split_history
from mlflow_gitops.registry.port import Writes
from tests.fakes import FakeRegistry
from tests.reliability.scenarios import GUARDED, Expected, Key, Scenario

# the calls that write a registered model: the Writes port and a copy (the lock, the audit record
# and the webhooks write none)
WRITES = frozenset(
    name for name in vars(Writes) if not name.startswith("_") and callable(getattr(Writes, name))
) | {"copy_version"}


def stage_counts(model: ModelState | None) -> Counter[str]:
    return Counter(v.stage for v in model.versions) if model else Counter()


@dataclass
class Watch:
    """Checks each intermediate state of one apply."""

    scenario: Scenario
    expected: dict[str, Expected]
    before: dict[str, ModelState]
    violations: list[str] = field(default_factory=list)
    over_limit: list[str] = field(default_factory=list)
    swaps: int = 0
    writes: int = 0
    peaks: Counter[tuple[str, str]] = field(default_factory=Counter)  # most holders seen
    lock: threading.Lock = field(default_factory=threading.Lock)

    def after_write(self, call: tuple[str, ...], now: ModelState | None) -> None:
        name = call[1]
        with self.lock:
            self.writes += 1
            prev = self.before.get(name)
            self.before[name] = now  # type: ignore[assignment]
            expected = self.expected.get(name)
            if expected is None or expected.blocked:
                self.violations.append(f"{call}: wrote to a model that must not be touched")
                return
            if now is None:
                return
            self._holders(call, prev, now, expected)
            self._aliases(call, prev, now)
            self._limits(call, prev, now, expected)

    def _holders(
        self, call: tuple[str, ...], prev: ModelState | None, now: ModelState, exp: Expected
    ) -> None:
        was, has = stage_counts(prev), stage_counts(now)
        for stage in GUARDED:
            if not was[stage] or has[stage] or not exp.held(stage):
                continue
            if stage == "Staging" and call[0] == "transition_stage" and call[3] == "Production":
                # a swap: the versions due in Staging all held Production before this call (the
                # handover archives them in the same call; they move on to Staging next)
                future = exp.held("Staging")
                held = self._keys(prev) if prev is not None else {}
                in_prod = {k for k, v in held.items() if v == "Production" and k != int(call[2])}
                if future <= in_prod:
                    self.swaps += 1
                    continue
            self.violations.append(
                f"{call}: {stage} of {now.name} left without a holder "
                f"(it is held again at the end: {sorted(map(str, exp.held(stage)))})"
            )

    def _keys(self, model: ModelState) -> dict[Key, str]:
        """Versions by oracle key: new versions by the entry that registered them."""
        keys = new_version_keys(self.scenario, model)
        return {keys.get(v.version, v.version): v.stage for v in model.versions}

    def _aliases(self, call: tuple[str, ...], prev: ModelState | None, now: ModelState) -> None:
        declared = self.scenario.desired[now.name].aliases
        for alias in prev.aliases if prev else {}:
            if alias in now.aliases:
                continue
            if call[0] == "delete_alias" and call[2] == alias and declared.get(alias, 0) is None:
                continue
            self.violations.append(f"{call}: alias {alias} of {now.name} left without a version")

    def _limits(
        self, call: tuple[str, ...], prev: ModelState | None, now: ModelState, exp: Expected
    ) -> None:
        was, has = stage_counts(prev), stage_counts(now)
        for stage, limit in exp.limits.items():
            self.peaks[now.name, stage] = max(self.peaks[now.name, stage], has[stage])
            if has[stage] > was[stage] and has[stage] > limit:
                self.over_limit.append(
                    f"{call}: {has[stage]} versions of {now.name} in {stage}, limit {limit}"
                )


def new_version_keys(scenario: Scenario, model: ModelState) -> dict[int, Key]:
    """Version number -> `new<j>` for the versions the file registered."""
    decl = scenario.desired.get(model.name)
    out: dict[int, Key] = {}
    for d in decl.versions if decl else ():
        if not isinstance(d.ref, str):
            continue
        for v in model.versions:
            if v.run_id == scenario.new_run(model.name, d.ref) or v.source == scenario.new_source(
                model.name, d.ref
            ):
                out[v.version] = d.ref
    return out


def watched(registry: Any, on_write: Callable[[tuple[str, ...]], None]) -> None:
    """Make every method of `registry` that writes a model call on_write after it."""
    for attr in sorted(WRITES):
        original = getattr(registry, attr)

        def wrapper(*args: Any, _original: Any = original, _name: str = attr) -> Any:
            result = _original(*args)
            on_write((_name, *map(str, args)))
            return result

        setattr(registry, attr, wrapper)


# MLflow's own checks and the PostgreSQL store's column sizes (mlflow/store/model_registry/dbmodels)
MAX_NAME = 256
MAX_DESCRIPTION = 5000
MAX_MODEL_TAG_VALUE = 5000
MAX_TAG_KEY = 250


class LimitedRegistry(FakeRegistry):
    """The in-memory registry with the limits a PostgreSQL-backed MLflow enforces."""

    def _limit(self, what: str, value: str, limit: int) -> None:
        if len(value) > limit:
            raise RegistryError(f"{what} is {len(value)} characters, the column holds {limit}", "")

    def create_model(self, name: str) -> None:
        self._limit("model name", name, MAX_NAME)
        super().create_model(name)

    def set_model_description(self, name: str, text: str) -> None:
        self._limit("model description", text, MAX_DESCRIPTION)
        super().set_model_description(name, text)

    def set_version_description(self, name: str, version: int, text: str) -> None:
        self._limit(f"description of version {version}", text, MAX_DESCRIPTION)
        super().set_version_description(name, version, text)

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self._limit("tag key", key, MAX_TAG_KEY)
        self._limit(f"model tag {key}", value, MAX_MODEL_TAG_VALUE)
        super().set_model_tag(name, key, value)

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self._limit("tag key", key, MAX_TAG_KEY)
        super().set_version_tag(name, version, key, value)


class CheckedRegistry(LimitedRegistry):
    """The in-memory registry (with PostgreSQL's limits), every write checked by a Watch."""

    def watch(self, watch: Watch) -> None:
        watched(self, lambda call: watch.after_write(call, self.models.get(call[1])))


# --- the end state ---------------------------------------------------------------------------------


def convergence_problems(scenario: Scenario, after: RegistryState) -> list[str]:
    """How the registry after apply differs from what the file and the documented rules say."""
    problems: list[str] = []
    for name, live in after.models.items():
        untouchable = name not in scenario.desired or scenario.expect(name).blocked
        if untouchable and live != scenario.observed.get(name):
            problems.append(f"{name}: changed, but it is not managed or it is blocked")
    for name in scenario.desired:
        exp = scenario.expect(name)
        live = after.models.get(name)
        if exp.blocked:
            continue
        if live is None:
            problems.append(f"{name}: does not exist")
            continue
        problems += _model_problems(scenario, name, exp, live)
    return problems


def _model_problems(scenario: Scenario, name: str, exp: Expected, live: ModelState) -> list[str]:
    out: list[str] = []
    decl = scenario.desired[name]
    before = scenario.observed.get(name) or ModelState(name=name)
    keys = new_version_keys(scenario, live)
    numbers = {keys.get(v.version, v.version): v.version for v in live.versions}
    stages = {keys.get(v.version, v.version): v.stage for v in live.versions}
    if stages != exp.stages:
        out.append(f"{name}: stages {stages}, expected {exp.stages}")
    if decl.description is not None and live.description.rstrip() != decl.description.rstrip():
        out.append(f"{name}: description {live.description!r}")
    if decl.description is None and live.description != before.description:
        out.append(f"{name}: description changed although the file does not manage it")
    out += _tag_problems(f"{name}", before.user_tags, live.user_tags, decl.tags)
    for alias in set(before.aliases) | set(live.aliases) | set(decl.aliases):
        if alias in decl.aliases:
            target = decl.aliases[alias]
            want = None if target is None else numbers.get(target)
        else:
            want = before.aliases.get(alias)
        if live.aliases.get(alias) != want:
            out.append(f"{name}: alias {alias} -> {live.aliases.get(alias)}, expected {want}")
    declared = {d.ref: d for d in decl.versions}
    for v in live.versions:
        key = keys.get(v.version, v.version)
        was = before.version(v.version) if isinstance(key, int) else None
        d = declared.get(key)
        user_text = split_history(v.description)[0]
        old_text = split_history(was.description)[0] if was else ""
        if d is not None and d.description is not None:
            if user_text != d.description.rstrip():
                out.append(f"{name} v{v.version}: description {user_text!r}")
        elif user_text != old_text:
            out.append(f"{name} v{v.version}: description lost: {old_text!r} -> {user_text!r}")
        out += _tag_problems(
            f"{name} v{v.version}", was.user_tags if was else {}, v.user_tags, d.tags if d else {}
        )
    return out


def _tag_problems(
    where: str, before: dict[str, str], after: dict[str, str], declared: dict[str, str | None]
) -> list[str]:
    want = dict(before)
    for key, value in declared.items():
        if value is None:
            want.pop(key, None)
        else:
            want[key] = value
    return [] if after == want else [f"{where}: tags {after}, expected {want}"]
