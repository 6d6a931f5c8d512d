"""Semantic checks that the schema alone cannot express; pure, offline."""

from __future__ import annotations

import difflib
import importlib.util
import posixpath
import re
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mlflow_gitops.errors import SpecIssue
from mlflow_gitops.record import MAX_TAG_VALUE, TOOL_TAG_PREFIX
from mlflow_gitops.settings import is_databricks
from mlflow_gitops.spec.model import (
    COPY_PREFIX,
    DEFAULT_REGISTRY,
    RUN_PREFIX,
    SOURCE_PREFIX,
    STAGES,
    EvaluateGate,
    ModelSpec,
    parse_copy_ref,
    parse_run_ref,
    settings_for,
)

if TYPE_CHECKING:
    from mlflow_gitops.spec.located import LoadedSpec, Loc

_Add = Callable[..., None]  # add(loc, message, hint='')

# MLflow's own rules (mlflow.utils.validation), restated so `validate` never imports mlflow
ALIAS_PATTERN = re.compile(r"^[\w\-]*$")
RESERVED_ALIAS = re.compile(r"^(latest|[vV]\d+)$", re.IGNORECASE)
MAX_ALIAS_LENGTH = 255
MAX_TAG_KEY_LENGTH = 250
MAX_MODEL_NAME_LENGTH = 256
TAG_KEY_PATTERN = re.compile(r"^[/\w.\- :]*$")


def check(loaded: LoadedSpec, file: str) -> list[SpecIssue]:
    """Every semantic problem in the file, in file order."""
    from mlflow_gitops.spec.located import format_loc, locate

    issues: list[SpecIssue] = []

    def add(loc: Loc, message: str, hint: str = "") -> None:
        _, pos = locate(loc, loaded.positions)
        issues.append(SpecIssue(file, pos.line, pos.column, format_loc(loc), message, hint))

    spec = loaded.spec
    for key in ("tracking_uri", "registry_uri"):
        uri = getattr(spec, key)
        if uri and _has_credentials(uri):
            add(
                (key,),
                f"the {key.split('_')[0]} URI carries credentials",
                "never commit secrets: set MLFLOW_TRACKING_USERNAME/PASSWORD or TOKEN instead",
            )
    _check_registries(loaded, add)
    for name, model in spec.models.items():
        _check_model(name, model, add, settings_for(spec, model).max_per_stage)
    return sorted(issues, key=lambda i: (i.line, i.column))


def _check_registries(loaded: LoadedSpec, add: _Add) -> None:
    """`registries:` and `default_registry:` of a root file (an included file may name neither,
    which the tree loader reports)."""
    spec = loaded.spec
    names = sorted(spec.registries or {})
    for key in ("tracking_uri", "registry_uri", "audit_experiment"):
        if spec.registries is not None and getattr(spec, key) is not None:
            add(
                (key,),
                f"{key}: and registries: are both given",
                f"move it under registries: ({key}: at the top level belongs to the single "
                "registry of a file without registries:)",
            )
    for name, registry in (spec.registries or {}).items():
        for key in ("tracking_uri", "registry_uri"):
            uri = getattr(registry, key)
            if uri and _has_credentials(uri):
                add(
                    ("registries", name, key),
                    f"the {key.split('_')[0]} URI of registry '{name}' carries credentials",
                    "never commit secrets: name the variables that hold them with username_env/"
                    "password_env or token_env (host_env and token_env for Databricks)",
                )
        given = [u for u in (registry.tracking_uri, registry.registry_uri) if u is not None]
        unknown = registry.tracking_uri_env is not None or registry.registry_uri_env is not None
        if registry.host_env is not None and not unknown and not any(map(is_databricks, given)):
            add(
                ("registries", name, "host_env"),
                f"registry '{name}' names host_env: but neither of its URIs is a Databricks "
                "workspace's (databricks://...) or Unity Catalog's (databricks-uc://...)",
                "remove host_env: (an MLflow server takes username_env/password_env or "
                "token_env), or point the registry at Databricks",
            )
    if spec.registries is not None and not spec.registries:
        add(("registries",), "registries: lists no registry", "name at least one, or remove it")
    if spec.default_registry is not None:
        known = names or [DEFAULT_REGISTRY]
        if spec.default_registry not in known:
            add(
                ("default_registry",),
                unknown_registry(spec.default_registry, known),
                "name one of the registries under registries:",
            )
    elif len(names) > 1:
        add(
            ("registries",),
            f"default_registry: is required when registries: lists more than one "
            f"({', '.join(names)})",
            "add default_registry: <name> (the registry of the root file's models and of "
            "included files without registry:)",
        )


def unknown_registry(name: str, known: list[str]) -> str:
    """`unknown registry 'prd' (declared: dev, prod; did you mean 'prod'?)`"""
    close = difflib.get_close_matches(name, known, n=1)
    return f"unknown registry '{name}' (declared: {', '.join(known)}" + (
        f"; did you mean '{close[0]}'?)" if close else ")"
    )


def _check_model(name: str, model: ModelSpec, add: _Add, max_per_stage: dict[str, int]) -> None:
    base: Loc = ("models", name)
    problem = model_name_problem(name)
    if problem:
        add(base, problem, "MLflow model names are 1 to 256 printable characters without / or :")
    _check_tags(model.tags, (*base, "tags"), add)

    seen: dict[str, int] = {}
    for i, entry in enumerate(model.versions):
        loc = (*base, "versions", i)
        if entry.key in seen:
            add(
                loc,
                f"duplicate version entry ({entry.key}, also versions[{seen[entry.key]}])",
                "each version appears once; merge the two entries",
            )
        else:
            seen[entry.key] = i
        _check_tags(entry.tags, (*loc, "tags"), add)

    for i, entry in enumerate(model.versions):
        if entry.deleted and entry.stage not in (None, "None", "Archived"):
            add(
                (*base, "versions", i, "stage"),
                f"a deleted version cannot be in {entry.stage}",
                "remove the stage, or drop deleted: true",
            )
        if entry.deleted and entry.version is None:
            add(
                (*base, "versions", i),
                "deleted: true needs `version: N`",
                "name the version to delete by its number",
            )

    declared_aliases = set(model.aliases or {})
    for mirrored, alias in (model.mirror_stages_to_aliases or {}).items():
        loc = (*base, "mirror_stages_to_aliases", mirrored)
        problem = alias_name_problem(alias)
        if problem:
            add(loc, problem, "aliases use letters, digits, _ and -")
        if alias in declared_aliases:
            add(
                loc,
                f"alias '{alias}' is both mirrored from {mirrored} and declared under aliases",
                "keep one: the mirror moves it with the stage",
            )
    for alias in (model.policy.protected_aliases or []) if model.policy else []:
        if alias_name_problem(alias):
            add((*base, "policy", "protected_aliases"), alias_name_problem(alias), "")

    counts = Counter(str(v.stage) for v in model.versions if v.stage is not None and not v.deleted)
    for stage, limit in max_per_stage.items():
        if counts[stage] > limit:
            where = [i for i, v in enumerate(model.versions) if v.stage == stage]
            add(
                (*base, "versions", where[limit]),
                f"{counts[stage]} versions in {stage}, more than max_per_stage allows ({limit})",
                f"leave at most {limit} in {stage}, or raise max_per_stage.{stage}",
            )

    for alias, target in (model.aliases or {}).items():
        loc = (*base, "aliases", alias)
        problem = alias_name_problem(alias)
        if problem:
            add(loc, problem, "aliases use letters, digits, _ and -; 'latest' and v<N> are taken")
        if target is None or isinstance(target, int):
            if isinstance(target, int) and target < 1:
                add(loc, f"version {target} does not exist", "versions start at 1")
            continue
        declared = _declared_key(target)
        if declared is None:
            add(
                loc,
                f"alias target '{target}' is not a version",
                "use a version number, run:<run_id>[/<path>], source:<uri> or "
                "copy_from:[registry:]model/version",
            )
        elif declared not in seen:
            add(
                loc,
                f"alias '{alias}' points to {declared}, which is not declared under versions",
                "add that version entry to versions:, or point the alias at a version number",
            )

    for target in model.gates:
        if not gate_target_ok(target):
            add(
                (*base, "gates", target),
                f"'{target}' is not a gate target",
                "use a stage (Staging, Production) or alias:<name>",
            )
        for i, gate in enumerate(model.gates[target].checks):
            if isinstance(gate, EvaluateGate) and gate.evaluate.engine == "spark":
                missing = spark_missing()
                if missing:
                    add(
                        (*base, "gates", target, "checks", i, "evaluate", "engine"),
                        f"engine: spark needs {missing}, which is not installed",
                        "pip install 'mlflow-gitops[spark]'",
                    )


def spark_missing() -> str:
    """The module engine: spark needs and this environment lacks, or ''; imports nothing."""
    return "" if importlib.util.find_spec("pyspark") is not None else "pyspark"


def model_name_problem(name: str) -> str:
    """Why MLflow (or its database) would refuse this model name, or ''."""
    shown = repr(name)[1:-1][:60]
    if not name.strip():
        return "a model name cannot be empty"
    if "/" in name or ":" in name:
        return f"'{shown}' is not a valid model name (no / or :)"
    if not name.isprintable():
        return f"'{shown}' is not a valid model name (control characters)"
    if len(name) > MAX_MODEL_NAME_LENGTH:
        return f"model name '{shown}...' is longer than {MAX_MODEL_NAME_LENGTH} characters"
    if name in (".", "..") or name != name.strip():
        return f"'{shown}' is not a valid model name"
    return ""


def _path_trick(key: str) -> bool:
    """MLflow refuses keys that are not their own normalised path (`a/../b`, `/x`, `./y`)."""
    return posixpath.normpath(key) != key or key.startswith(("..", "/"))


def _declared_key(target: str) -> str | None:
    target = target.strip()
    if target.startswith(RUN_PREFIX):
        try:
            run_id, path = parse_run_ref(target[len(RUN_PREFIX) :])
        except ValueError:
            return None
        return f"run {run_id}/{path}"
    if target.startswith(SOURCE_PREFIX):
        return f"source {target[len(SOURCE_PREFIX) :].strip()}"
    if target.startswith(COPY_PREFIX):
        try:
            return f"copy_from {parse_copy_ref(target[len(COPY_PREFIX) :])}"
        except ValueError:
            return None
    return None


def alias_key(target: str) -> str | None:
    """The version-entry key an alias target names (`run:x` -> `run x/model`), if any."""
    return _declared_key(target)


def alias_name_problem(alias: str) -> str:
    """Why MLflow would refuse this alias name, or ''."""
    if not alias:
        return "an alias name cannot be empty"
    if not ALIAS_PATTERN.match(alias):
        return f"'{alias}' is not a valid alias name"
    if RESERVED_ALIAS.match(alias):
        return f"alias '{alias}' is reserved by MLflow"
    if len(alias) > MAX_ALIAS_LENGTH:
        return f"alias '{alias[:20]}...' is longer than {MAX_ALIAS_LENGTH} characters"
    return ""


def gate_target_ok(target: str) -> bool:
    """A stage name (any case) or alias:<valid alias>."""
    if target.lower() in (s.lower() for s in STAGES):
        return True
    return target.startswith("alias:") and not alias_name_problem(target[len("alias:") :])


def _check_tags(tags: dict[str, str | None] | None, loc: Loc, add: _Add) -> None:
    for key, value in (tags or {}).items():
        if value is not None and len(value) > MAX_TAG_VALUE:
            add(
                (*loc, key),
                f"tag value is {len(value):,} characters, over MLflow's {MAX_TAG_VALUE:,}",
                "",
            )
        if not TAG_KEY_PATTERN.match(key) or (key.strip() and _path_trick(key)):
            add(
                (*loc, key),
                f"'{repr(key)[1:-1][:60]}' is not a valid tag key",
                "MLflow tag keys use letters, digits, _ - . / : and spaces, and no path tricks",
            )
        elif key.startswith(TOOL_TAG_PREFIX):
            add(
                (*loc, key),
                f"tag '{key}' uses the prefix reserved for mlflow-gitops' own annotations",
                f"rename it; keys starting with {TOOL_TAG_PREFIX} are written by the tool",
            )
        elif not key.strip() or len(key) > MAX_TAG_KEY_LENGTH:
            add((*loc, key), "a tag key must be 1 to 250 characters", "")


def _has_credentials(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return bool(parts.password) or "@" in parts.netloc
