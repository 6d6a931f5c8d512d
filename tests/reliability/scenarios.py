"""Random registries and random registry.yaml files for the convergence property, and an oracle:
what the registry must look like after a successful apply, derived from the documented rules
(docs/registry-yaml.md, docs/commands.md) independently of the planner."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import yaml
from hypothesis import strategies as st

from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.record import HISTORY_MARKER
from tests.reliability.corpus_cases import run_id

STAGES = ("None", "Staging", "Production", "Archived")
GUARDED = ("Staging", "Production")
MODEL_NAMES = ("m0", "m1", "m2")
TAG_KEYS = ("team", "task", "owner")
TAG_VALUES = ("rides", "search", "alice")
ALIASES = ("champion", "challenger", "shadow")
DESCRIPTIONS = ("", "Trip duration.", "GBR, 50 trees")
LIMITS = ({"Production": 1}, {"Production": 2}, {"Production": 1, "Staging": 1})

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
Key = int | str  # an existing version number, or `new<j>` for a version the file registers


@dataclass(frozen=True)
class VersionDecl:
    """One entry under versions:; `ref` is what it names, `style` how the file names it."""

    ref: Key
    style: str  # version | run | source
    stage: str | None = None
    tags: dict[str, str | None] = field(default_factory=dict)
    description: str | None = None


@dataclass(frozen=True)
class ModelDecl:
    """One model in the file."""

    versions: tuple[VersionDecl, ...] = ()
    description: str | None = None
    tags: dict[str, str | None] = field(default_factory=dict)
    aliases: dict[str, Key | None] = field(default_factory=dict)
    archive_previous: bool | None = None
    unmanaged_versions: str | None = None
    max_per_stage: dict[str, int] | None = None


@dataclass(frozen=True)
class Scenario:
    """A live registry and a file to apply to it."""

    observed: dict[str, ModelState]
    desired: dict[str, ModelDecl]
    archive_previous: bool = True
    unmanaged_versions: str = "ignore"
    max_per_stage: dict[str, int] = field(default_factory=lambda: {"Production": 1})
    run_refs: bool = True  # False: versions come from sources only (real MLflow, no runs)
    parallelism: int = 1

    # --- names ---------------------------------------------------------------------------------

    def new_run(self, model: str, key: str) -> str:
        return run_id(f"{model}/{key}")

    def new_source(self, model: str, key: str) -> str:
        return f"file:///models/{model}/{key}"

    def runs(self) -> set[str]:
        """Every run the tracking server knows: the live versions' and the new entries'."""
        known = {v.run_id for m in self.observed.values() for v in m.versions if v.run_id}
        for name, model in self.desired.items():
            known |= {
                self.new_run(name, str(d.ref)) for d in model.versions if isinstance(d.ref, str)
            }
        return known

    def renamed(self, prefix: str) -> Scenario:
        """The same scenario with every model name prefixed (to share one real registry)."""

        def rename(state: ModelState) -> ModelState:
            return replace(state, name=prefix + state.name)

        return replace(
            self,
            observed={prefix + n: rename(m) for n, m in self.observed.items()},
            desired={prefix + n: m for n, m in self.desired.items()},
        )

    # --- the file --------------------------------------------------------------------------------

    def settings(self, name: str) -> tuple[bool, str, dict[str, int]]:
        """archive_previous, unmanaged_versions, max_per_stage in effect for a model."""
        model = self.desired[name]
        archive = (
            self.archive_previous if model.archive_previous is None else model.archive_previous
        )
        unmanaged = model.unmanaged_versions or self.unmanaged_versions
        return archive, unmanaged, {**self.max_per_stage, **(model.max_per_stage or {})}

    def reference(self, name: str, decl: VersionDecl) -> dict[str, Any]:
        if isinstance(decl.ref, str):
            if decl.style == "run":
                return {"run": self.new_run(name, decl.ref)}
            return {"source": self.new_source(name, decl.ref)}
        live = self.observed[name].version(decl.ref)
        assert live is not None
        if decl.style == "run":
            return {"run": live.run_id}
        if decl.style == "source":
            return {"source": live.source}
        return {"version": decl.ref}

    def alias_target(self, name: str, target: Key | None) -> int | str | None:
        if target is None or isinstance(target, int):
            return target
        decl = next(d for d in self.desired[name].versions if d.ref == target)
        ref = self.reference(name, decl)
        return f"run:{ref['run']}" if "run" in ref else f"source:{ref['source']}"

    def document(self) -> dict[str, Any]:
        models: dict[str, Any] = {}
        for name, model in self.desired.items():
            out: dict[str, Any] = {}
            if model.description is not None:
                out["description"] = model.description
            if model.tags:
                out["tags"] = dict(model.tags)
            if model.aliases:
                out["aliases"] = {a: self.alias_target(name, t) for a, t in model.aliases.items()}
            entries = []
            for decl in model.versions:
                entry = self.reference(name, decl)
                if decl.stage is not None:
                    entry["stage"] = decl.stage
                if decl.tags:
                    entry["tags"] = dict(decl.tags)
                if decl.description is not None:
                    entry["description"] = decl.description
                entries.append(entry)
            if entries:
                out["versions"] = entries
            for key in ("archive_previous", "unmanaged_versions", "max_per_stage"):
                if getattr(model, key) is not None:
                    out[key] = getattr(model, key)
            models[name] = out
        return {
            "version": 1,
            "defaults": {
                "archive_previous": self.archive_previous,
                "unmanaged_versions": self.unmanaged_versions,
                "max_per_stage": self.max_per_stage,
            },
            "models": models,
        }

    def yaml(self) -> str:
        return yaml.dump(self.document(), Dumper=_DUMPER, sort_keys=False, allow_unicode=True)

    # --- the oracle ------------------------------------------------------------------------------

    def expect(self, name: str) -> Expected:
        """What `name` must look like after apply, by the documented rules."""
        live = self.observed.get(name) or ModelState(name=name)
        model = self.desired[name]
        archive, unmanaged, limits = self.settings(name)
        final: dict[Key, str] = {v.version: v.stage for v in live.versions}
        declared: dict[Key, str | None] = {}
        for decl in model.versions:
            final[decl.ref] = decl.stage or final.get(decl.ref, "None")
            declared[decl.ref] = decl.stage
        if archive:
            for stage in GUARDED:
                if stage in declared.values():
                    for key, now in list(final.items()):
                        if now == stage and declared.get(key) != stage:
                            final[key] = "Archived"
        if unmanaged == "archive":
            for v in live.versions:
                if v.version not in declared:
                    final[v.version] = "Archived"
        counts = Counter(final.values())
        blocked = any(counts[s] > n for s, n in limits.items())
        return Expected(name=name, stages=final, limits=limits, blocked=blocked)


@dataclass(frozen=True)
class Expected:
    name: str
    stages: dict[Key, str]  # every version's stage after apply
    limits: dict[str, int]
    blocked: bool  # the file's result breaks max_per_stage: the model must not be touched

    def held(self, stage: str) -> set[Key]:
        return {k for k, s in self.stages.items() if s == stage}


# --- strategies ----------------------------------------------------------------------------------
# built once: constructing strategies inside the draws costs more than the draws themselves

STAGE = st.sampled_from(STAGES)
MAYBE_STAGE = st.none() | STAGE
MAYBE_TEXT = st.none() | st.sampled_from(DESCRIPTIONS)


def _tags(options: tuple[str | None, ...]) -> st.SearchStrategy[dict[str, str | None]]:
    """A tag dict as one integer (one draw, not one per key): per key, absent or an option."""
    base = len(options) + 1

    def decode(n: int) -> dict[str, str | None]:
        out = {}
        for key in TAG_KEYS:
            n, pick = divmod(n, base)
            if pick:
                out[key] = options[pick - 1]
        return out

    return st.integers(0, base ** len(TAG_KEYS) - 1).map(decode)


LIVE_TAGS = _tags(TAG_VALUES)
FILE_TAGS = _tags((*TAG_VALUES, None))  # None: the file deletes the tag
MAYBE_BOOL = st.none() | st.booleans()
MAYBE_MODE = st.none() | st.sampled_from(["ignore", "archive"])


@st.composite
def observed_model(draw: st.DrawFn, name: str, run_refs: bool, max_versions: int) -> ModelState:
    versions = []
    for number in range(1, draw(st.integers(0, max_versions)) + 1):
        run = run_id(f"{name}/v{number}") if run_refs else None
        description = draw(st.sampled_from(DESCRIPTIONS))
        if draw(st.booleans()):  # a history block from an earlier apply: the planner ignores it
            description += f"\n\n{HISTORY_MARKER}\n- 2026-01-01: None -> Staging"
        versions.append(
            VersionState(
                number,
                draw(STAGE),
                source=f"runs:/{run}/model" if run else f"file:///models/{name}/v{number}",
                run_id=run,
                description=description,
                tags=draw(LIVE_TAGS),
            )
        )
    numbers = [v.version for v in versions]
    aliases = st.dictionaries(st.sampled_from(ALIASES), st.sampled_from(numbers or [0]))
    return ModelState(
        name=name,
        description=draw(st.sampled_from(DESCRIPTIONS)),
        tags=draw(LIVE_TAGS),
        aliases=draw(aliases) if numbers else {},
        versions=tuple(versions),
    )


@st.composite
def model_decl(
    draw: st.DrawFn, live: ModelState | None, run_refs: bool, limits: dict[str, int]
) -> ModelDecl:
    styles = ["version", "run", "source"] if run_refs else ["version", "source"]
    existing = [v.version for v in live.versions] if live else []
    refs: list[tuple[Key, str]] = []
    for number in existing:
        style = draw(st.sampled_from([None, *styles]))  # None: not in the file
        if style is not None:
            refs.append((number, style))
    for j in range(draw(st.integers(0, 2))):
        refs.append((f"new{j}", draw(st.sampled_from(styles[1:]))))
    refs = draw(st.permutations(refs))
    decls = []
    counts: Counter[str] = Counter()
    for ref, style in refs:
        stage = draw(MAYBE_STAGE)
        if stage is not None:
            counts[stage] += 1
            if counts[stage] > limits.get(stage, len(refs)):
                stage = "Archived"  # the file itself must respect max_per_stage
        decls.append(VersionDecl(ref, style, stage, draw(FILE_TAGS), draw(MAYBE_TEXT)))
    targets: list[Key | None] = [None, *existing, *(d.ref for d in decls if isinstance(d.ref, str))]
    return ModelDecl(
        versions=tuple(decls),
        description=draw(MAYBE_TEXT),
        tags=draw(FILE_TAGS),
        aliases=draw(st.dictionaries(st.sampled_from(ALIASES), st.sampled_from(targets))),
        archive_previous=draw(MAYBE_BOOL),
        unmanaged_versions=draw(MAYBE_MODE),
    )


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    names: tuple[str, ...] = MODEL_NAMES,
    run_refs: bool = True,
    max_versions: int = 5,
) -> Scenario:
    """A random live registry (stages, aliases, tags, descriptions, drift included) and a random
    registry.yaml that is valid against it and respects max_per_stage."""
    observed = {}
    desired = {}
    limits = draw(st.sampled_from(LIMITS))
    for name in names:
        live, managed = draw(
            st.sampled_from([(True, True), (True, False), (False, True), (False, False)])
        )
        if live:
            observed[name] = draw(observed_model(name, run_refs, max_versions))
        if managed:
            desired[name] = draw(model_decl(observed.get(name), run_refs, limits))
    if not desired:
        desired[names[0]] = draw(model_decl(observed.get(names[0]), run_refs, limits))
    return Scenario(
        observed=observed,
        desired=desired,
        archive_previous=draw(st.booleans()),
        unmanaged_versions=draw(st.sampled_from(["ignore", "archive"])),
        max_per_stage=limits,
        run_refs=run_refs,
        parallelism=draw(st.sampled_from([1, 4])),
    )
