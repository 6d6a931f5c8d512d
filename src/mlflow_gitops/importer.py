"""`import`: a registry.yaml that describes the live registry, so that plan on it is empty; or,
with --tree, a file per registry (or per model) for a root that names several registries."""

from __future__ import annotations

import glob
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.observed import ModelState, RegistryState, WebhookState
from mlflow_gitops.record import split_history
from mlflow_gitops.spec.tree import LoadedTree


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def registry_document(
    state: RegistryState,
    aliases_from_stages: dict[str, str] | None = None,
    *,
    stages: bool = True,
) -> dict[str, Any]:
    """The data of a registry.yaml for these models; with aliases_from_stages (e.g.
    {Production: champion}) the stages become aliases and the file declares no stage. Without
    `stages` (a registry that has none: Unity Catalog) the file declares no stage either."""
    models = {
        name: _model(m, aliases_from_stages, stages=stages)
        for name, m in sorted(state.models.items())
    }
    hooks = webhooks_document(state.webhooks)
    return {"version": 1, **({"webhooks": hooks} if hooks else {}), "models": models}


def webhooks_document(hooks: Sequence[WebhookState] | None) -> dict[str, dict[str, object]]:
    """The `webhooks:` of an imported file: every webhook as the server holds it (no
    secret_env: MLflow never returns a secret; add it by hand to manage the secret)."""
    out: dict[str, dict[str, object]] = {}
    for hook in sorted(hooks or (), key=lambda h: h.name):
        entry: dict[str, object] = {"url": hook.url, "events": list(hook.events)}
        if hook.description:
            entry["description"] = hook.description
        entry["status"] = hook.status
        out.setdefault(hook.name, entry)  # two of one name: the first (plan says which)
    return out


def _model(
    model: ModelState, aliases_from_stages: dict[str, str] | None = None, *, stages: bool = True
) -> dict[str, Any]:
    declare_stages = stages and aliases_from_stages is None
    out: dict[str, Any] = {}
    user_description = split_history(model.description)[0]
    if user_description:
        out["description"] = user_description
    if model.user_tags:
        out["tags"] = dict(sorted(model.user_tags.items()))
    aliases = dict(model.aliases)
    for stage, alias in (aliases_from_stages or {}).items():
        holders = [v.version for v in model.versions if v.stage == stage]
        if holders:
            aliases.setdefault(alias, max(holders))
    if aliases:
        out["aliases"] = dict(sorted(aliases.items()))
    counts = Counter(v.stage for v in model.versions)
    if counts["Production"] > 1 and declare_stages:
        # older registries allowed several; describe them as they are rather than fail validation
        out["max_per_stage"] = {"Production": counts["Production"]}
    versions = []
    for v in model.versions:
        entry: dict[str, Any] = {"version": v.version}
        if declare_stages:
            entry["stage"] = v.stage
        if v.user_tags:
            entry["tags"] = dict(sorted(v.user_tags.items()))
        if v.user_description:
            entry["description"] = v.user_description
        versions.append(entry)
    out["versions"] = versions
    return out


def render_registry(
    state: RegistryState,
    source: str,
    now: datetime,
    aliases_from_stages: dict[str, str] | None = None,
    *,
    stages: bool = True,
) -> str:
    """YAML text with a header saying where it came from (`stages`: registry_document)."""
    header = (
        "# yaml-language-server: $schema=registry.schema.json\n"
        f"# Imported from {source} by mlflow-gitops on {now:%Y-%m-%d}.\n"
    )
    return header + _dump(registry_document(state, aliases_from_stages, stages=stages))


# --- a tree: one file per registry, or one per model ------------------------------------------

TREE_FOLDER = (
    "registries"  # under the root's folder: registries/<name>.yaml, or <name>/<model>.yaml
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class TreeFile:
    """A file `import --tree` writes: where, its text, and the models it declares."""

    path: Path
    text: str
    registry: str
    models: tuple[str, ...]


@dataclass(frozen=True)
class ImportTreeOutcome:
    """The files to write (under `folder`), the notes to show first (a model the tree declares
    elsewhere is left to its file), and the include: patterns the root lacks for them (empty:
    it already includes them)."""

    files: tuple[TreeFile, ...]
    folder: Path
    notes: tuple[str, ...]
    missing_patterns: tuple[str, ...]


def tree_files(
    states: Mapping[str, RegistryState],
    identities: Mapping[str, str],
    folder: Path,
    now: datetime,
    *,
    split: bool = False,
    aliases_from_stages: dict[str, str] | None = None,
    without_stages: frozenset[str] = frozenset(),
) -> list[TreeFile]:
    """The files of a tree for these registries' models: `folder/<registry>.yaml` with
    `registry: <registry>`, or with `split` `folder/<registry>/<model>.yaml`, one per model. A
    model whose file name would collide with another's is an error that names both. The
    registries in `without_stages` (Unity Catalog's) get no `stage:`."""
    out: list[TreeFile] = []
    for registry, state in states.items():
        source = f"registry '{registry}' ({identities[registry]})"
        stages = registry not in without_stages
        if not split:
            text = _tree_text(state, registry, source, now, aliases_from_stages, stages)
            path = _tree_path(folder, registry, None)
            out.append(TreeFile(path, text, registry, tuple(sorted(state.models))))
            continue
        taken: dict[str, str] = {}
        for name in sorted(state.models):
            stem = _file_name(name)
            if stem.lower() in taken:
                raise GitopsError(
                    f"models '{taken[stem.lower()]}' and '{name}' of registry '{registry}' would "
                    f"both be written to {folder / registry / stem}.yaml",
                    "import them without --split (one file per registry), or with --model",
                )
            taken[stem.lower()] = name
            one = RegistryState({name: state.models[name]})
            text = _tree_text(one, registry, source, now, aliases_from_stages, stages)
            path = _tree_path(folder, registry, name)
            out.append(TreeFile(path, text, registry, (name,)))
    return out


def tree_paths(states: Mapping[str, RegistryState], folder: Path, *, split: bool) -> list[Path]:
    """The paths tree_files would write for these registries' models, without their text."""
    if not split:
        return [_tree_path(folder, registry, None) for registry in states]
    return [_tree_path(folder, r, m) for r, state in states.items() for m in sorted(state.models)]


def _tree_path(folder: Path, registry: str, model: str | None) -> Path:
    """`folder/<registry>.yaml`, or for one model of a split tree `folder/<registry>/<model>.yaml`."""
    if model is None:
        return folder / f"{_file_name(registry)}.yaml"
    return folder / _file_name(registry) / f"{_file_name(model)}.yaml"


def _file_name(name: str) -> str:
    """A model or registry name as a file name: characters other than letters, digits, `.`,
    `_` and `-` become `_`."""
    return _UNSAFE.sub("_", name).strip(".") or "_"


def _tree_text(
    state: RegistryState,
    registry: str,
    source: str,
    now: datetime,
    aliases_from_stages: dict[str, str] | None,
    stages: bool = True,
) -> str:
    document = registry_document(state, aliases_from_stages, stages=stages)
    document = {"version": 1, "registry": registry, **document}
    header = f"# Imported from {source} by mlflow-gitops on {now:%Y-%m-%d}.\n"
    return header + _dump(document)


def _dump(document: dict[str, Any]) -> str:
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )


def include_patterns(root: Path, patterns: Sequence[str], written: Sequence[Path]) -> list[str]:
    """The include: patterns the root needs so that it includes every written file: none when
    its own patterns already match them all, else one per folder written to (`registries/*.yaml`,
    `registries/*/*.yaml`), relative to the root's folder."""
    folder = root.resolve().parent
    matched = {
        (folder / m).resolve()
        for pattern in patterns
        for m in glob.glob(pattern, root_dir=folder, recursive=True)
    }
    needed: list[str] = []
    for path in written:
        if path.resolve() in matched:
            continue
        relative = path.resolve().parent.relative_to(folder)
        pattern = (relative / "*.yaml").as_posix()
        if len(relative.parts) > 1 and relative.parts[0] == TREE_FOLDER:
            pattern = (Path(*relative.parts[:-1]) / "*" / "*.yaml").as_posix()
        if pattern not in needed:
            needed.append(pattern)
    return needed


def declared_elsewhere(tree: LoadedTree, written: Sequence[Path]) -> dict[str, dict[str, str]]:
    """The models the tree already declares in files import does not rewrite, by registry:
    model -> where (file:line:col). Import leaves them to their file (a second declaration
    would make the tree invalid)."""
    rewritten = {p.resolve() for p in written}
    out: dict[str, dict[str, str]] = {}
    for key, declared in tree.models.items():
        if declared.file.path not in rewritten:
            out.setdefault(key.registry, {})[key.name] = declared.where()
    return out
