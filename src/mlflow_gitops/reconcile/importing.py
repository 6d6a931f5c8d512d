"""The `import` use case: the live registry as a registry.yaml, or with --tree the selected
registries of a root, read at once, as a file per registry (or per model)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.importer import (
    TREE_FOLDER,
    ImportTreeOutcome,
    declared_elsewhere,
    include_patterns,
    render_registry,
    tree_files,
    tree_paths,
)
from mlflow_gitops.observed import RegistryState
from mlflow_gitops.reconcile import connect
from mlflow_gitops.reconcile.planning import concurrently
from mlflow_gitops.registry.webhooks import live_webhooks
from mlflow_gitops.secrets import redact
from mlflow_gitops.settings import is_unity_catalog
from mlflow_gitops.spec.tree import load_tree

STAGES_AS_ALIASES = {"Production": "champion", "Staging": "challenger"}


@dataclass(frozen=True)
class ImportRequest:
    """What `import` was given: the models (empty: all), the file to write (None: print it);
    with `tree`, the root whose registries (empty: all) to write as files under `out_dir`."""

    now: datetime
    models: tuple[str, ...] = ()
    out: Path | None = None
    tracking_uri: str | None = None
    aliases_from_stages: Mapping[str, str] | None = None
    tree: bool = False
    root: Path = Path("registry.yaml")
    split: bool = False
    registries: tuple[str, ...] = ()
    out_dir: Path | None = None


@dataclass(frozen=True)
class Imported:
    """The registry.yaml text and how many models it describes (written to `out` if given)."""

    text: str
    models: int
    out: Path | None


def import_request(request: ImportRequest) -> Imported | ImportTreeOutcome:
    """One registry.yaml of the live registry, or with `tree` a file per registry of the root
    (or per model), written."""
    if request.tree:
        if request.out is not None:
            raise GitopsError("--out writes one file; --tree writes several", "use --out-dir")
        return import_tree(
            ImportTreeRequest(
                request.root,
                request.now,
                request.registries,
                request.models,
                request.split,
                request.out_dir,
                request.tracking_uri,
                request.aliases_from_stages,
                write=True,
            )
        )
    if request.split or request.registries or request.out_dir is not None:
        raise GitopsError(
            "--split, --registry and --out-dir need --tree",
            "add --tree (and --root if the root is not ./registry.yaml)",
        )
    return import_registry(request)


def import_registry(request: ImportRequest) -> Imported:
    """Read the registry once and describe it as a registry.yaml; write it to `out` if given."""
    out = request.out
    uri, registry = connect.connect(
        request.tracking_uri, None, out.resolve().parent if out else Path.cwd()
    )
    state = connect.read_models(registry, uri, list(request.models) or None)
    if not request.models:  # the whole registry: its webhooks too (MLflow 3.3+, readable by admins)
        state = live_webhooks(state, registry.webhooks)
    mapping = dict(request.aliases_from_stages) if request.aliases_from_stages else None
    text = render_registry(
        state, redact(uri), request.now, mapping, stages=not is_unity_catalog(uri)
    )
    if out is not None:
        out.write_text(text, encoding="utf-8")
    return Imported(text, len(state.models), out)


@dataclass(frozen=True)
class ImportTreeRequest:
    """What `import --tree` was given. `registries` and `models` (empty: all) restrict it;
    `out_dir` (default: `registries/` beside the root) must be inside the root's folder."""

    root: Path
    now: datetime
    registries: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    split: bool = False
    out_dir: Path | None = None
    tracking_uri: str | None = None
    aliases_from_stages: Mapping[str, str] | None = None
    write: bool = False  # write the files (else only return them)


def import_tree(request: ImportTreeRequest) -> ImportTreeOutcome:
    """Read each selected registry once, all at once, each with its own credentials; leave the
    models the tree already declares in files import does not rewrite to those files; write
    the files when asked."""
    tree = load_tree(request.root)
    names = list(request.registries) or list(tree.registry_names)
    if request.tracking_uri is not None and len(names) != 1:
        raise GitopsError(
            f"--tracking-uri names one registry, and {len(names)} are selected",
            "select one with --registry NAME, or set each registry's variable",
        )
    root = request.root
    folder = request.out_dir if request.out_dir is not None else root.parent / TREE_FOLDER
    if not folder.resolve().is_relative_to(root.resolve().parent):
        raise GitopsError(
            f"--out-dir {folder} is outside the folder of {root}",
            "include: patterns are relative to the root's folder: write the tree inside it",
        )

    def read_one(name: str) -> tuple[RegistryState, str, bool]:
        where, registry = connect.connect_named(tree, name, request.tracking_uri)
        state = registry.read(list(request.models) or None)
        if not request.models and not request.split:
            state = live_webhooks(state, registry.webhooks)
        return state, redact(where.identity), where.unity_catalog

    read = dict(zip(names, concurrently(read_one, names), strict=True))
    states = {name: state for name, (state, _, _) in read.items()}
    found = {m for state in states.values() for m in state.models}
    missing = sorted(set(request.models) - found)
    if missing:
        raise GitopsError(
            f"no registered model named {', '.join(map(repr, missing))} in {', '.join(names)}",
            "check the names (they are case-sensitive)",
        )
    elsewhere = declared_elsewhere(tree, tree_paths(states, folder, split=request.split))
    notes: list[str] = []
    for name, state in states.items():
        left = {m: w for m, w in elsewhere.get(name, {}).items() if m in state.models}
        notes += [f"{name}: {m} is declared at {w}; left there." for m, w in sorted(left.items())]
        states[name] = RegistryState({m: s for m, s in state.models.items() if m not in left})
    mapping = dict(request.aliases_from_stages) if request.aliases_from_stages else None
    files = tree_files(
        states,
        {name: identity for name, (_, identity, _) in read.items()},
        folder,
        request.now,
        split=request.split,
        aliases_from_stages=mapping,
        without_stages=frozenset(name for name, (_, _, uc) in read.items() if uc),
    )
    patterns = include_patterns(root, tree.root.spec.include or [], [f.path for f in files])
    for file in files if request.write else []:
        file.path.parent.mkdir(parents=True, exist_ok=True)
        file.path.write_text(file.text, encoding="utf-8")
    return ImportTreeOutcome(tuple(files), folder, tuple(notes), tuple(patterns))
