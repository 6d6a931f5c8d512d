"""Edits of registry.yaml that keep the file's comments, order and formatting: the new text is
spliced into the original at the positions the YAML parser reports, nothing else is rewritten."""

from __future__ import annotations

import difflib

import yaml

from mlflow_gitops.errors import GitopsError


def _compose(text: str) -> yaml.MappingNode:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise GitopsError(
            f"cannot edit the file: {exc}", "run `mlflow-gitops validate` first"
        ) from None
    if not isinstance(root, yaml.MappingNode):
        raise GitopsError("cannot edit the file: the top level is not a mapping", "")
    return root


def _get(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _line_end(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end < 0 else end


def _indent_of(text: str, index: int) -> int:
    return index - (text.rfind("\n", 0, index) + 1)


def _scalar(value: str | int) -> str:
    dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return dumped.removesuffix("\n...").removesuffix("...").strip()


def _entry_matches(item: yaml.Node, key: str, value: str) -> bool:
    found = _get(item, key)
    return found is not None and isinstance(found[1], yaml.ScalarNode) and found[1].value == value


def _versions(root: yaml.MappingNode, model: str) -> yaml.Node | None:
    models = _get(root, "models")
    if models is None:
        return None
    found = _get(models[1], model)
    if found is None:
        return None
    versions = _get(found[1], "versions")
    return versions[1] if versions else None


def set_entry_field(
    text: str, model: str, ref: tuple[str, str], field: str, value: str | int
) -> str:
    """Set `field` of the version entry whose `ref[0]` is `ref[1]` (e.g. ("version", "3")), adding
    the entry (block style, at the end of the list) when the file does not list it yet."""
    root = _compose(text)
    versions = _versions(root, model)
    if isinstance(versions, yaml.SequenceNode):
        for item in versions.value:
            if _entry_matches(item, *ref):
                return _set_in_mapping(text, item, field, value)
    return add_entry(
        text, model, [(ref[0], ref[1] if not ref[1].isdigit() else int(ref[1])), (field, value)]
    )


def _set_in_mapping(text: str, item: yaml.Node, field: str, value: str | int) -> str:
    existing = _get(item, field)
    if existing is not None:
        node = existing[1]
        return text[: node.start_mark.index] + _scalar(value) + text[node.end_mark.index :]
    assert isinstance(item, yaml.MappingNode)
    if item.flow_style:
        close = text.rfind("}", item.start_mark.index, item.end_mark.index)
        return text[:close].rstrip() + f", {field}: {_scalar(value)}" + text[close:]
    first_key, first_value = item.value[0]
    at = _line_end(text, _leaf_end(first_value))
    indent = " " * first_key.start_mark.column
    return text[:at] + f"\n{indent}{field}: {_scalar(value)}" + text[at:]


def add_entry(text: str, model: str, fields: list[tuple[str, str | int]]) -> str:
    """Append a version entry to the model's versions (creating versions: or the model if absent)."""
    root = _compose(text)
    models = _get(root, "models")
    if models is None:
        body = f"models:\n  {model}:\n    versions:\n" + _item(fields, 6)
        return text.rstrip("\n") + "\n" + body
    key_node, models_node = models
    found = _get(models_node, model)
    if found is None:
        if not isinstance(models_node, yaml.MappingNode) or models_node.flow_style:
            if isinstance(models_node, yaml.MappingNode) and not models_node.value:
                indent = key_node.start_mark.column + 2
                block = f"\n{' ' * indent}{model}:\n{' ' * (indent + 2)}versions:\n" + _item(
                    fields, indent + 4
                ).rstrip("\n")
                return (
                    text[: models_node.start_mark.index].rstrip()
                    + block
                    + text[models_node.end_mark.index :]
                )
            raise GitopsError(
                "cannot add a model to a flow-style models: mapping", "use block style"
            )
        last_key, last_value = models_node.value[-1]
        indent = last_key.start_mark.column
        at = _after_node(text, last_value)
        block = f"{' ' * indent}{model}:\n{' ' * (indent + 2)}versions:\n" + _item(
            fields, indent + 4
        )
        return text[:at] + block + text[at:]
    model_key, model_node = found
    versions = _get(model_node, "versions")
    if versions is None:
        if not isinstance(model_node, yaml.MappingNode) or model_node.flow_style:
            raise GitopsError(
                f"cannot add versions to the flow-style entry of {model}", "use block style"
            )
        indent = (
            model_node.value[0][0].start_mark.column
            if model_node.value
            else model_key.start_mark.column + 2
        )
        at = (
            _after_node(text, model_node.value[-1][1])
            if model_node.value
            else _line_end(text, model_key.end_mark.index) + 1
        )
        return text[:at] + f"{' ' * indent}versions:\n" + _item(fields, indent + 2) + text[at:]
    versions_key, seq = versions
    if isinstance(seq, yaml.SequenceNode) and seq.value and not seq.flow_style:
        last = seq.value[-1]
        dash = text.rfind("-", 0, last.start_mark.index)
        indent = _indent_of(text, dash)
        at = _after_node(text, last)
        return text[:at] + _item(fields, indent) + text[at:]
    # `versions: []` or a flow sequence: rewrite just that node as a block list
    indent = versions_key.start_mark.column + 2
    items = "".join(_item(_flow_fields(i), indent) for i in getattr(seq, "value", []) or [])
    block = "\n" + items + _item(fields, indent)
    return (
        text[: seq.start_mark.index].rstrip(" ") + block.rstrip("\n") + text[seq.end_mark.index :]
    )


def _flow_fields(node: yaml.Node) -> list[tuple[str, str | int]]:
    out: list[tuple[str, str | int]] = []
    for k, v in getattr(node, "value", []):
        value = yaml.safe_load(v.value) if isinstance(v, yaml.ScalarNode) else v.value
        out.append((k.value, value))
    return out


def _leaf_end(node: yaml.Node) -> int:
    """Where the node's last scalar (or flow collection) ends: a block collection's own end mark
    lies at the next token, past blank lines and comments that belong to what follows."""
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return _leaf_end(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _leaf_end(node.value[-1])
    return int(node.end_mark.index)


def _after_node(text: str, node: yaml.Node) -> int:
    """The start of the line after the node's last line (a comment on that line stays with it)."""
    stop = _line_end(text, _leaf_end(node))
    if stop >= len(text):
        return len(text)
    return stop + 1


def _item(fields: list[tuple[str, str | int]], indent: int) -> str:
    pad = " " * indent
    lines = [f"{pad}- {fields[0][0]}: {_scalar(fields[0][1])}"]
    lines += [f"{pad}  {k}: {_scalar(v)}" for k, v in fields[1:]]
    return "\n".join(lines) + "\n"


def diff(before: str, after: str, name: str) -> str:
    """A unified diff of the edit, for the terminal and for review."""
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"a/{name}",
            f"b/{name}",
        )
    )
