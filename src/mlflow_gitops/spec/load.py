"""The only place registry.yaml is parsed: YAML with positions, then the schema, then checks."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlflow_gitops.errors import SpecError, SpecIssue
from mlflow_gitops.spec.located import (
    LoadedSpec,
    Loc,
    Mark,
    Position,
    format_loc,
    locate,
)
from mlflow_gitops.spec.model import RegistrySpec

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_NODES = 1_000_000  # guards against huge documents and alias expansion ("billion laughs")
MAX_DEPTH = 64  # registry files nest about 8 deep


class _Walker:
    """Builds plain Python data from a YAML node tree, recording each node's position."""

    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.positions: dict[Loc, Mark] = {}
        self.issues: list[SpecIssue] = []
        self.visited = 0

    def walk(self, node: yaml.Node, loc: Loc) -> Any:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise _TooLarge(node)
        if loc not in self.positions:
            self.positions[loc] = node.start_mark
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves `<<` merge keys
            out: dict[Any, Any] = {}
            first_seen: dict[Any, yaml.Node] = {}
            for key_node, value_node in node.value:
                key = self._construct(key_node, loc)
                if not isinstance(key, str | int | float | bool) or key is None:
                    self._issue(key_node, loc, "a key must be a plain scalar", "")
                    continue
                if key in first_seen:
                    first = _pos(first_seen[key])
                    self._issue(
                        key_node,
                        (*loc, str(key)),
                        f"duplicate key '{key}' (first defined at line {first.line})",
                        "remove or merge one of the two entries",
                    )
                    continue
                first_seen[key] = key_node
                child: Loc = (*loc, key if isinstance(key, str) else str(key))
                self.positions[child] = key_node.start_mark
                out[key] = self.walk(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*loc, i)) for i, item in enumerate(node.value)]
        value = self._construct(node, loc)
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                self._issue(node, loc, "the text holds a lone surrogate (\\ud800-\\udfff)", "")
        return value

    def _construct(self, node: yaml.Node, loc: Loc) -> Any:
        """A scalar's value; an impossible one (`2021-02-30`, `!!int 09`) is a located issue."""
        if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
            return node.value  # most scalars: no constructor needed
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError):
            tag = node.tag.rsplit(":", 1)[-1]
            self._issue(
                node,
                loc,
                f"cannot read {str(node.value)[:40]!r} as {tag}",
                "quote it to keep it as text",
            )
            return None

    def _issue(self, node: yaml.Node, loc: Loc, message: str, hint: str) -> None:
        p = _pos(node)
        self.issues.append(SpecIssue(self.file, p.line, p.column, format_loc(loc), message, hint))


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node | None, mark: Any = None) -> None:
        self.node = node
        self.mark = mark


def _pos(node: yaml.Node) -> Position:
    mark = node.start_mark
    return Position(mark.line + 1, mark.column + 1)


_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"


class _CountingLoader(yaml.SafeLoader):
    """Stops composing once the document has more nodes than any registry file needs, before
    PyYAML has built them all (used when PyYAML was built without libyaml, which is rare)."""

    composed = 0
    composed_root: Any = None

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.composed += 1
        if self.composed > MAX_NODES:
            raise _TooLarge(None, self.get_mark())
        return super().compose_node(parent, index)


def _guard(text: str, file: str) -> None:
    """A fast first pass over libyaml's event stream (constant memory): refuse documents with too
    many nodes or too deep a nesting before the pure-Python composer builds them."""
    if not getattr(yaml, "__with_libyaml__", False):
        return
    nodes = depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if isinstance(event, yaml.NodeEvent):
                nodes += 1
            too_many, too_deep = nodes > MAX_NODES, depth > MAX_DEPTH
            if too_many or too_deep:
                mark = event.start_mark
                message = (
                    f"the document has more than {MAX_NODES:,} nodes"
                    if too_many
                    else f"the document nests deeper than {MAX_DEPTH} levels"
                )
                raise SpecError(
                    [
                        SpecIssue(
                            file,
                            mark.line + 1 if mark else 1,
                            mark.column + 1 if mark else 1,
                            "",
                            message,
                            "split or flatten the file",
                        )
                    ]
                )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        if "nesting depth" in str(exc.problem) and mark is not None:
            message = f"the document nests deeper than {MAX_DEPTH} levels"
            raise SpecError(
                [SpecIssue(file, mark.line + 1, mark.column + 1, "", message, "flatten the file")]
            ) from None
        return  # the located message comes from the full parser below
    except yaml.YAMLError:
        return


def _compose_fast(text: str) -> Any:
    """A loader that has composed the document: libyaml (about 5x faster) when it reads the text
    cleanly, else the pure-Python loader, whose errors carry the messages users see."""
    if _BASE_LOADER is not yaml.SafeLoader:
        fast = _BASE_LOADER(text)
        try:
            fast.composed_root = fast.get_single_node()
            return fast
        except yaml.YAMLError:
            fast.dispose()
    slow = _CountingLoader(text)
    slow.composed_root = slow.get_single_node()
    return slow


GUARD_ABOVE_BYTES = 1024 * 1024  # a smaller file holds at most ~500,000 nodes: bounded anyway


def _needs_guard(text: str) -> bool:
    """Big files, and files that nest flow collections (deep nesting fits in a few bytes)."""
    if len(text) > GUARD_ABOVE_BYTES:
        return True
    return any(line.count("[") + line.count("{") > 3 for line in text.splitlines())


def parse_yaml(text: str, file: str) -> tuple[Any, dict[Loc, Mark]]:
    """YAML text -> (data, positions); raises SpecError with the position of any syntax error."""
    if _BASE_LOADER is not yaml.SafeLoader:
        try:
            return _build_from_events(text)
        except _Unusual:
            pass  # the node walker below reads it, and locates what is wrong
    if _needs_guard(text):
        _guard(text, file)
    loader: Any = None
    try:
        loader = _compose_fast(text)
        root = loader.composed_root
        if root is None:
            raise SpecError([SpecIssue(file, 1, 1, "", "the file is empty", _START_HINT)])
        walker = _Walker(loader, file)
        data = walker.walk(root, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        hint = (
            "YAML indents with spaces, never tabs" if "\\t" in problem or "tab" in problem else ""
        )
        raise SpecError(
            [SpecIssue(file, line, col, "", f"YAML syntax error: {problem}", hint)]
        ) from None
    except yaml.reader.ReaderError as exc:
        line, col = _line_col(text, exc.position)
        raise SpecError(
            [
                SpecIssue(
                    file,
                    line,
                    col,
                    "",
                    f"the file contains a character YAML does not allow ({exc.character!r})",
                    "remove control characters; write them as escapes inside double quotes",
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue(file, 1, 1, "", f"YAML error: {exc}", "")]) from None
    except RecursionError:
        raise SpecError(
            [SpecIssue(file, 1, 1, "", "the document is nested too deeply", "flatten the file")]
        ) from None
    except _TooLarge as exc:
        p = (
            _pos(exc.node)
            if exc.node is not None
            else Position(exc.mark.line + 1, exc.mark.column + 1)
        )
        raise SpecError(
            [
                SpecIssue(
                    file,
                    p.line,
                    p.column,
                    "",
                    f"the document has or expands to more than {MAX_NODES:,} nodes",
                    "YAML anchors and aliases that multiply are not allowed here",
                )
            ]
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    if walker.issues:
        raise SpecError(walker.issues)
    return data, walker.positions


class _Unusual(Exception):
    """The text uses something the event builder leaves to the node walker."""


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_BOOL, _NULL = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"
_PLAIN_TAGS = frozenset({_INT, _FLOAT, _BOOL, _NULL})


def _build_from_events(text: str) -> tuple[Any, dict[Loc, Mark]]:
    """The fast path, for the plain YAML registry files are made of: data and positions built
    straight from libyaml's events, with no node tree (3x faster than composing and walking
    nodes; `validate` of a tree of 200 files is mostly this). Anchors, aliases, merge keys,
    explicit tags, duplicate keys, unusual scalars and any syntax error raise _Unusual: the node
    walker then gives the same data, or the located errors, as before."""
    parser = yaml.CSafeLoader(text)
    try:
        return _build(parser)
    except yaml.YAMLError:
        raise _Unusual from None
    finally:
        parser.dispose()


def _build(parser: Any) -> tuple[Any, dict[Loc, Mark]]:
    events = yaml.events
    get = parser.get_event
    scalar_event, alias_event = events.ScalarEvent, events.AliasEvent
    mapping_start, sequence_start = events.MappingStartEvent, events.SequenceStartEvent
    resolved: dict[tuple[str, Any], str] = {}
    constructed: dict[tuple[str, str], Any] = {}
    positions: dict[Loc, Mark] = {}
    no_key: Any = _Unusual  # a sentinel no YAML key can equal
    stack: list[tuple[Any, Loc, Any, bool]] = []
    container: Any = None
    loc: Loc = ()
    key: Any = no_key
    in_map = False

    if not isinstance(get(), events.StreamStartEvent) or not isinstance(
        get(), events.DocumentStartEvent
    ):
        raise _Unusual  # an empty document: the walker says so
    first = get()
    if type(first) not in (mapping_start, sequence_start):
        raise _Unusual
    event = first
    while True:
        cls = type(event)
        if cls is scalar_event:
            if event.anchor is not None or (event.tag is not None and event.tag != "!"):
                raise _Unusual
            text_value = event.value
            cache_key = (text_value, event.implicit)
            tag = resolved.get(cache_key)
            if tag is None:
                tag = resolved[cache_key] = parser.resolve(yaml.ScalarNode, *cache_key)
            if tag == _STR_TAG:
                value: Any = text_value
                if event.style == '"':
                    try:
                        value.encode("utf-8")
                    except UnicodeEncodeError:
                        raise _Unusual from None
            elif tag in _PLAIN_TAGS:
                try:
                    value = constructed[tag, text_value]
                except KeyError:
                    try:
                        value = parser.construct_object(yaml.ScalarNode(tag, text_value))
                    except (ValueError, TypeError, OverflowError):
                        raise _Unusual from None  # the walker locates it
                    constructed[tag, text_value] = value
            else:
                raise _Unusual  # timestamps, merge keys, binary: the walker's constructors
            if in_map and key is no_key:
                if value is None or value in container:
                    raise _Unusual  # a null key, or a duplicate: the walker reports it
                key = value
                positions[(*loc, key if tag == _STR_TAG else str(key))] = event.start_mark
                event = get()
                continue
            mark = event.start_mark
        elif cls is mapping_start or cls is sequence_start:
            if event.anchor is not None or (event.tag is not None and event.tag != "!"):
                raise _Unusual
            if in_map and key is no_key:
                raise _Unusual  # a collection as a key
            if container is None:
                child: Loc = ()
                positions[child] = event.start_mark
            elif in_map:
                child = (*loc, key if isinstance(key, str) else str(key))
            else:
                child = (*loc, len(container))
                positions[child] = event.start_mark
            if len(stack) >= MAX_DEPTH:
                raise _Unusual
            stack.append((container, loc, key, in_map))
            in_map = cls is mapping_start
            container, loc, key = ({} if in_map else []), child, no_key
            event = get()
            continue
        elif cls is alias_event:
            raise _Unusual
        else:  # the end of a mapping or sequence
            value = container
            container, loc, key, in_map = stack.pop()
            if container is None:
                break
            mark = None
        if in_map:
            container[key] = value
            key = no_key
        else:
            if mark is not None:
                positions[(*loc, len(container))] = mark
            container.append(value)
        event = get()
    if not isinstance(get(), events.DocumentEndEvent) or not isinstance(
        get(), events.StreamEndEvent
    ):
        raise _Unusual  # several documents: the walker says so
    return value, positions


def _line_col(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    line = before.count("\n") + 1
    return line, index - (before.rfind("\n") + 1) + 1


_START_HINT = "start from `mlflow-gitops import` or the example in the README (version: 1, models:)"


def read_text(path: Path) -> str:
    """The file as UTF-8 text, or a SpecError that says why not."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(
            [SpecIssue(file, 1, 1, "", "file not found", "give the path of a registry.yaml")]
        ) from None
    except OSError as exc:
        raise SpecError([SpecIssue(file, 1, 1, "", f"cannot read: {exc.strerror}", "")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(
            [
                SpecIssue(
                    file,
                    1,
                    1,
                    "",
                    f"file is {len(raw):,} bytes, over the {MAX_FILE_BYTES:,}-byte limit",
                    "split the registry across files or remove generated content",
                )
            ]
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(
            [
                SpecIssue(
                    file,
                    line,
                    col,
                    "",
                    f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                    "save the file as UTF-8",
                )
            ]
        ) from None


def file_tracking_uri(text: str) -> str | None:
    """The tracking_uri of a registry file's text, without requiring a valid file."""
    return file_setting(text, "tracking_uri")


def file_setting(text: str, key: str) -> str | None:
    """A top-level text setting of a registry file's text (tracking_uri, registry_uri,
    audit_experiment), without requiring a valid file."""
    try:
        data = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return None
    found = data.get(key) if isinstance(data, dict) else None
    return found if isinstance(found, str) else None


def load(path: Path | str) -> LoadedSpec:
    """Read, parse, validate and check a registry.yaml; every problem at once in a SpecError."""

    path = Path(path)
    return load_text(read_text(path), path)


def load_text(text: str, path: Path) -> LoadedSpec:
    """Parse, validate and check text as if it were the file at `path` (for edits before saving)."""
    from mlflow_gitops.spec.check import check

    loaded = parse_file(text, path, str(path))
    issues = check(loaded, str(path))
    if issues:
        raise SpecError(issues)
    return loaded


def parse_file(text: str, path: Path, shown: str) -> LoadedSpec:
    """Parse and validate one file against the schema (no semantic checks yet)."""
    data, positions = parse_yaml(text, shown)
    spec = validate_data(data, positions, shown)
    return LoadedSpec(spec=spec, path=path.resolve(), positions=positions, shown=shown)


def validate_data(data: Any, positions: dict[Loc, Mark], file: str) -> RegistrySpec:
    """Data -> RegistrySpec, or a SpecError locating every schema violation."""
    if not isinstance(data, dict):
        raise SpecError([SpecIssue(file, 1, 1, "", "the top level must be a mapping", _START_HINT)])
    try:
        return RegistrySpec.model_validate(data)
    except ValidationError as exc:
        issues = [_issue_from_pydantic(err, positions, file) for err in exc.errors()]
        raise SpecError(_dedupe(issues)) from None


_VOCABULARY = sorted(
    {
        "version", "tracking_uri", "defaults", "models", "archive_previous",
        "unmanaged_versions", "max_per_stage", "description", "tags", "aliases", "versions",
        "gates", "run", "source", "stage", "metric", "max", "min", "evaluate", "data",
        "prepare", "target", "preprocessor", "metrics", "baseline", "on_missing_baseline",
        "threshold", "min_absolute_change", "min_relative_change", "greater_is_better",
        "max_size_mb", "latency", "batch_rows", "p50_ms", "p95_ms", "require_tags",
        "require_signature", "checks", "on_rollback", "deleted", "mirror_stages_to_aliases",
        "policy", "allowed_transitions", "min_time_in_staging", "protected_aliases",
        "engine", "spark", "master", "remote", "conf", "registries", "default_registry",
        "include", "registry", "copy_from", "tracking_uri_env", "username_env",
        "password_env", "token_env", "registry_uri", "registry_uri_env", "host_env",
        "audit_experiment",
    }
)  # fmt: skip


def _without_gate_tags(loc: Loc) -> Loc:
    """Drop the tag pydantic puts after a gate's index (`...[0].metric.foo` -> `...[0].foo`)."""
    from mlflow_gitops.spec.model import GATE_KINDS

    out: list[str | int] = []
    for i, part in enumerate(loc):
        if i and isinstance(loc[i - 1], int) and part in GATE_KINDS and "gates" in loc[:i]:
            continue
        out.append(part)
    return tuple(out)


def _issue_from_pydantic(err: Any, positions: dict[Loc, Mark], file: str) -> SpecIssue:
    loc: Loc = _without_gate_tags(tuple(err["loc"]))
    kind = err["type"]
    path, pos = locate(loc, positions)
    field = format_loc(path)
    value = err.get("input")
    message, hint = err["msg"], ""
    if kind == "extra_forbidden":
        key = loc[-1]
        message = f"unknown key '{key}'"
        close = difflib.get_close_matches(str(key), _VOCABULARY, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "see `mlflow-gitops schema` for the keys"
    elif kind == "missing":
        key = loc[-1]
        field = format_loc((*path, key)) if path != loc else field
        message = f"missing required key '{key}'"
    elif kind == "literal_error" and loc[-1] == "version" and len(path) == 1:
        message = f"unsupported schema version {value!r}"
        hint = "this mlflow-gitops reads `version: 1`"
    elif kind == "literal_error" and (
        "stage" in loc or "max_per_stage" in loc or "Staging" in str(err.get("ctx", ""))
    ):
        message = f"'{value}' is not a stage"
        hint = "use one of None, Staging, Production, Archived (any case)"
    elif kind == "gate_kind":
        keys = ", ".join(sorted(value)) if isinstance(value, dict) else repr(value)
        message = f"unknown gate ({keys})"
        hint = err["msg"]
    elif kind == "string_pattern_mismatch" and str(path[-1]).endswith("_env"):
        message = f"'{value}' is not an environment variable name"
        hint = "use letters, digits and _, not starting with a digit"
    elif kind == "string_pattern_mismatch" and (
        path[:1] == ("registries",) or path in (("registry",), ("default_registry",))
    ):
        message = f"'{value}' is not a registry name"
        hint = "use letters, digits, _ . and - (up to 64), starting with a letter or digit"
    elif kind == "string_too_short":
        message = "must not be empty"
    elif kind == "string_too_long":
        limit = err.get("ctx", {}).get("max_length")
        message = (
            f"is {len(value):,} characters, over the limit of {limit:,}"
            if isinstance(value, str) and limit
            else err["msg"]
        )
    elif kind == "value_error":
        message = str(err.get("ctx", {}).get("error", err["msg"]))
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        message = f"{err['msg'].lower()}, got {_describe(value)}"
    return SpecIssue(file, pos.line, pos.column, field, message, hint)


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}"


def _dedupe(issues: list[SpecIssue]) -> list[SpecIssue]:
    seen: set[tuple[int, int, str]] = set()
    out = []
    for issue in issues:
        key = (issue.line, issue.column, issue.message)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out
