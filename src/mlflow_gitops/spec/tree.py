"""A tree of registry files: the root registry.yaml and the files it includes, with each model,
(registry, name), declared once; and, at plan time, where each registry is and its credentials.

`load` still reads one file on its own; `load_tree` reads the root and everything it includes.
A root without `include:` and `registries:` gives a tree of one file and one registry, `default`,
that means exactly what `load` gives.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from mlflow_gitops.credentials import CREDENTIAL_VARIABLES, Credentials
from mlflow_gitops.errors import SpecError, SpecIssue
from mlflow_gitops.settings import Endpoint
from mlflow_gitops.spec.check import check, unknown_registry
from mlflow_gitops.spec.load import parse_file, read_text
from mlflow_gitops.spec.located import LoadedSpec, Loc, format_loc, locate
from mlflow_gitops.spec.model import (
    DEFAULT_REGISTRY,
    CopyFrom,
    ModelSpec,
    RegistryConnection,
    VersionSpec,
    merge_defaults,
)
from mlflow_gitops.spec.unity_catalog import is_uc, literal_registry_uri, unity_catalog_issues

MAX_FILES = 10_000
ROOT_ONLY = (
    "registries",
    "default_registry",
    "tracking_uri",
    "registry_uri",
    "audit_experiment",
    "policies",
)
# a registry's credential fields, each filled from the variable its `registries:` entry names
CREDENTIAL_FIELDS = {
    "username_env": "username",
    "password_env": "password",
    "token_env": "token",
    "host_env": "host",
}


class ModelKey(NamedTuple):
    """A model's identity in a tree."""

    registry: str
    name: str


@dataclass(frozen=True)
class DeclaredModel:
    """A model of the tree, the registry it lives in, and the file that declares it."""

    registry: str
    name: str
    file: LoadedSpec

    @property
    def spec(self) -> ModelSpec:
        return self.file.spec.models[self.name]

    @property
    def loc(self) -> Loc:
        return ("models", self.name)

    def where(self) -> str:
        """`teams/rides/prod.yaml:4:3`: where the model is declared."""
        return self.file.where(self.loc)

    def copy_source(self, entry: VersionSpec) -> CopyFrom | None:
        """The version an entry copies, its registry filled in (default: this model's)."""
        return entry.copy_from.in_registry(self.registry) if entry.copy_from else None


@dataclass(frozen=True)
class LoadedTree:
    """The root file, the files it includes (in include order) and every model, keyed by
    (registry, name). Each included file's `spec.defaults` holds its effective defaults (its own
    over the root's)."""

    root: LoadedSpec
    files: tuple[LoadedSpec, ...]
    registries: dict[str, RegistryConnection]  # as declared; empty for a file without registries:
    default_registry: str
    file_registry: dict[Path, str]  # resolved path of every file -> the registry of its models
    models: dict[ModelKey, DeclaredModel]

    @property
    def all_files(self) -> tuple[LoadedSpec, ...]:
        return (self.root, *self.files)

    @property
    def registry_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.registries)) or (DEFAULT_REGISTRY,)

    def registry_of(self, loaded: LoadedSpec) -> str:
        return self.file_registry[loaded.path]

    def files_in(self, registry: str) -> list[LoadedSpec]:
        """The files whose models live in this registry, root first."""
        return [f for f in self.all_files if self.file_registry[f.path] == registry]

    def models_in(self, registry: str) -> list[DeclaredModel]:
        """The models of one registry, in file order."""
        return [m for m in self.models.values() if m.registry == registry]


def load_tree(path: Path | str) -> LoadedTree:
    """Read, validate and check the root file and every file it includes; every problem of
    every file at once in one SpecError."""
    path = Path(path)
    root = parse_file(read_text(path), path, str(path))
    issues: list[SpecIssue] = []
    spec = root.spec
    known = sorted(spec.registries or {}) or [DEFAULT_REGISTRY]
    default = spec.default_registry or (known[0] if len(known) == 1 else "")
    if spec.registry is not None:
        issues.append(
            _issue(
                root,
                ("registry",),
                "registry: belongs in an included file",
                "the root file's models live in default_registry",
            )
        )
    files = [root]
    registry_of = {root.path: default}
    included = _included(root, issues)
    for shown in included:
        full = Path(shown)
        try:
            loaded = parse_file(read_text(full), full, shown)
        except SpecError as exc:
            issues += exc.issues
            continue
        registry_of[loaded.path] = _file_registry(loaded, root, known, default, issues)
        # a file without defaults: has the root's
        effective = merge_defaults(spec.defaults, loaded.spec.defaults)
        loaded = replace(loaded, spec=loaded.spec.model_copy(update={"defaults": effective}))
        files.append(loaded)
    for loaded in files:
        issues += check(loaded, loaded.name)
    issues += webhook_files(files, registry_of)
    for name in known:  # Unity Catalog's rules, for the registries whose URIs the file gives
        connection = (spec.registries or {}).get(name)
        if is_uc(literal_registry_uri(spec, connection)):
            mine = [f for f in files if registry_of[f.path] == name]
            issues += unity_catalog_issues(mine, root, name)
    if spec.policies:  # CEL is imported only for a file that has rules
        from mlflow_gitops.spec.policy_check import check_policies

        issues += check_policies(root)
    models = _models(files, registry_of, known, issues)
    if issues:
        order = {name: i for i, name in enumerate([root.name, *included])}
        raise SpecError(sorted(issues, key=lambda i: (order.get(i.file, 0), i.line, i.column)))
    return LoadedTree(
        root=root,
        files=tuple(files[1:]),
        registries=dict(spec.registries or {}),
        default_registry=default,
        file_registry=registry_of,
        models=models,
    )


def _included(root: LoadedSpec, issues: list[SpecIssue]) -> list[str]:
    """The files the root's include: patterns match, as `folder/relative` paths; a pattern that
    matches nothing, the root, or a file an earlier pattern matched is an error."""
    folder = Path(root.shown).parent
    first: dict[Path, str] = {}  # each included file -> the first pattern that matched it
    out: list[str] = []
    for i, pattern in enumerate(root.spec.include or []):
        loc: Loc = ("include", i)
        if Path(pattern).is_absolute():
            issues.append(
                _issue(
                    root,
                    loc,
                    f"include pattern '{pattern}' is absolute",
                    f"write it relative to the folder of {Path(root.shown).name}",
                )
            )
            continue
        matches = [
            folder / m
            for m in sorted(glob.glob(pattern, root_dir=folder, recursive=True))
            if (folder / m).is_file()
        ]
        if not matches:
            issues.append(
                _issue(
                    root,
                    loc,
                    f"include pattern '{pattern}' matches no file",
                    f"patterns are relative to the folder of {Path(root.shown).name}; fix the "
                    "pattern or remove it",
                )
            )
        twice: dict[str, list[Path]] = {}  # earlier pattern -> the files this one matches again
        for match in matches:
            resolved = match.resolve()
            if resolved == root.path:
                issues.append(
                    _issue(
                        root,
                        loc,
                        f"include pattern '{pattern}' matches the root file itself",
                        f"narrow the pattern so that it does not match {match}",
                    )
                )
            elif resolved in first:
                twice.setdefault(first[resolved], []).append(match)
            else:
                first[resolved] = pattern
                out.append(str(match))
        for earlier, again in twice.items():
            more = f" (and {len(again) - 1:,} more)" if len(again) > 1 else ""
            issues.append(
                _issue(
                    root,
                    loc,
                    f"include pattern '{pattern}' includes {again[0]}{more} a second time: "
                    f"'{earlier}' already matches it",
                    "narrow one of the two patterns so that each file is included once",
                )
            )
    if len(out) > MAX_FILES:
        issues.append(
            _issue(
                root,
                ("include",),
                f"include: matches {len(out):,} files, more than {MAX_FILES:,}",
                "narrow the patterns",
            )
        )
        return []
    return out


def _file_registry(
    loaded: LoadedSpec, root: LoadedSpec, known: list[str], default: str, issues: list[SpecIssue]
) -> str:
    """An included file's registry (its registry:, else the default), reporting the root-only
    keys it may not use."""
    spec = loaded.spec
    for key in ROOT_ONLY:
        if getattr(spec, key) is not None:
            issues.append(
                _issue(
                    loaded,
                    (key,),
                    f"{key}: belongs in the root file ({root.name}), not in an included file",
                    "declare registries once, in the root; an included file names its "
                    "registry with registry:",
                )
            )
    if spec.include is not None:
        issues.append(
            _issue(
                loaded,
                ("include",),
                f"an included file cannot include others (only the root file, {root.name}, "
                "includes: one level)",
                f"move the pattern to the include: of {root.name}",
            )
        )
    if spec.registry is not None and spec.registry not in known:
        issues.append(
            _issue(
                loaded,
                ("registry",),
                unknown_registry(spec.registry, known),
                f"declare it under registries: in {root.name}, or name a declared one",
            )
        )
    return spec.registry or default


def _models(
    files: list[LoadedSpec],
    registry_of: dict[Path, str],
    known: list[str],
    issues: list[SpecIssue],
) -> dict[ModelKey, DeclaredModel]:
    """Every model by (registry, name); a second declaration, and a copy_from naming an unknown
    registry or the entry's own model, are errors."""
    models: dict[ModelKey, DeclaredModel] = {}
    for loaded in files:
        registry = registry_of[loaded.path]
        for name, model in loaded.spec.models.items():
            declared = DeclaredModel(registry=registry, name=name, file=loaded)
            key = ModelKey(registry, name)
            first = models.get(key)
            if first is not None:
                issues.append(
                    _issue(
                        loaded,
                        declared.loc,
                        f"model '{name}' (registry '{registry}') is declared twice: at "
                        f"{first.where()} and at {declared.where()}",
                        "declare each model in one file: merge the two and delete one",
                    )
                )
                continue
            models[key] = declared
            _check_copies(declared, model, known, issues)
    return models


def _check_copies(
    declared: DeclaredModel, model: ModelSpec, known: list[str], issues: list[SpecIssue]
) -> None:
    sources: dict[CopyFrom, int] = {}
    for i, entry in enumerate(model.versions):
        source = declared.copy_source(entry)
        if source is None or entry.copy_from is None:
            continue
        loc: Loc = (*declared.loc, "versions", i, "copy_from")
        if entry.copy_from.registry is not None and entry.copy_from.registry not in known:
            issues.append(
                _issue(
                    declared.file,
                    loc,
                    unknown_registry(entry.copy_from.registry, known),
                    "declare it under registries: in the root file, or name a declared one",
                )
            )
        elif (source.registry, source.model) == (declared.registry, declared.name):
            issues.append(
                _issue(
                    declared.file,
                    loc,
                    f"copy_from names this model in its own registry ({source})",
                    "copy from another registry (dev:model/N) or another model; to manage "
                    "this model's own version, write version: N",
                )
            )
        elif source in sources and str(model.versions[sources[source]].copy_from) != str(
            entry.copy_from
        ):  # the same text is a duplicate entry, which the file's own checks report
            issues.append(
                _issue(
                    declared.file,
                    loc,
                    f"{source} is copied twice (also versions[{sources[source]}])",
                    "each version appears once; merge the two entries",
                )
            )
        sources.setdefault(source, i)


def _issue(loaded: LoadedSpec, loc: Loc, message: str, hint: str) -> SpecIssue:
    _, pos = locate(loc, loaded.positions)
    return SpecIssue(loaded.name, pos.line, pos.column, format_loc(loc), message, hint)


# --- at plan time: where a registry is --------------------------------------------------------


@dataclass(frozen=True)
class ResolvedRegistry:
    """A registry ready to connect to: its URIs and its credentials, read from this registry's
    own variables only (never shown: the endpoint's repr hides both)."""

    name: str
    endpoint: Endpoint

    @property
    def uri(self) -> str:
        """Where its models live (the registry URI)."""
        return self.endpoint.registry_uri

    @property
    def credentials(self) -> Credentials:
        return self.endpoint.credentials or Credentials()

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values to mask in any output (passwords and tokens; a username is not a secret)."""
        return self.credentials.secrets


def resolve_registry(
    tree: LoadedTree, name: str, environ: Mapping[str, str], *, flag: str | None = None
) -> ResolvedRegistry:
    """Where registry `name` is and its credentials, from `environ`; a variable the registry
    names and `environ` lacks is a located error. Without registries: (one registry,
    `default`) the tracking URI is, as before, `flag`, $MLFLOW_TRACKING_URI, tracking_uri:, then
    sqlite:///mlflow.db next to the file; the registry URI $MLFLOW_REGISTRY_URI, registry_uri:,
    then MLflow's default for the tracking URI; the credentials MLFLOW_TRACKING_*'s. A named
    registry's registry URI is its registry_uri: (or the variable registry_uri_env: names),
    else MLflow's default for its tracking URI: never $MLFLOW_REGISTRY_URI, which belongs to no
    named registry. `flag` replaces the tracking URI."""
    from mlflow_gitops.settings import DEFAULT_URI, default_registry_uri
    from mlflow_gitops.settings import _anchor as anchor

    root = tree.root
    if name not in tree.registry_names:
        raise SpecError(
            [
                _issue(
                    root,
                    ("registries",),
                    unknown_registry(name, list(tree.registry_names)),
                    "name a registry the root file declares",
                )
            ]
        )
    if not tree.registries:
        spec = root.spec
        uri = (
            flag
            or environ.get("MLFLOW_TRACKING_URI")
            or anchor(spec.tracking_uri or DEFAULT_URI, root.folder)
        )
        registry_uri = environ.get("MLFLOW_REGISTRY_URI") or (
            anchor(spec.registry_uri, root.folder) if spec.registry_uri else ""
        )
        username, password, token = (environ.get(k) or None for k in CREDENTIAL_VARIABLES)
        known = Credentials(username, password, token)
        where = Endpoint(uri, registry_uri, known, spec.audit_experiment)
        return ResolvedRegistry(name=name, endpoint=where)
    connection = tree.registries[name]
    issues: list[SpecIssue] = []

    def variable(key: str) -> str:
        var: str = getattr(connection, key)
        value = environ.get(var, "")
        if not value:
            what = {"tracking_uri_env": "URI", "registry_uri_env": "registry URI"}.get(
                key, key.removesuffix("_env")
            )
            issues.append(
                _issue(
                    root,
                    ("registries", name, key),
                    f"registry '{name}' has no {what}: the variable {var} is not set",
                    f"set {var} (in GitHub Actions, from a secret: "
                    f"{var}: ${{{{ secrets.{var} }}}})",
                )
            )
        return value

    if flag:
        uri = flag
    elif connection.tracking_uri is not None:
        uri = anchor(connection.tracking_uri, root.folder)
    else:
        uri = variable("tracking_uri_env")
    if connection.registry_uri is not None:
        registry_uri = anchor(connection.registry_uri, root.folder)
    elif connection.registry_uri_env is not None:
        registry_uri = anchor(variable("registry_uri_env"), root.folder)
    else:
        registry_uri = default_registry_uri(uri)
    named = [key for key in CREDENTIAL_FIELDS if getattr(connection, key) is not None]
    values = {CREDENTIAL_FIELDS[key]: variable(key) for key in named}
    if issues:
        raise SpecError(issues)
    source = tuple(getattr(connection, key) for key in named)
    credentials = Credentials(**values, source=source)
    where = Endpoint(uri, registry_uri, credentials, connection.audit_experiment)
    return ResolvedRegistry(name=name, endpoint=where)


def webhook_files(files: list[LoadedSpec], registry_of: dict[Path, str]) -> list[SpecIssue]:
    """A registry's webhooks are declared in one file: a second file of the same registry that
    declares webhooks: is an error naming the first."""
    first: dict[str, LoadedSpec] = {}
    issues = []
    for loaded in files:
        if loaded.spec.webhooks is None:
            continue
        registry = registry_of[loaded.path]
        if registry not in first:
            first[registry] = loaded
            continue
        _, pos = locate(("webhooks",), loaded.positions)
        earlier = first[registry]
        _, where = locate(("webhooks",), earlier.positions)
        issues.append(
            SpecIssue(
                loaded.name,
                pos.line,
                pos.column,
                "webhooks",
                f"registry '{registry}' already declares its webhooks at "
                f"{earlier.name}:{where.line}:{where.column}",
                "declare a registry's webhooks in one of its files",
            )
        )
    return issues
