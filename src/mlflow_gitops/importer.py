"""`import`: a registry.yaml that describes the live registry, so that plan on it is empty."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import yaml

from mlflow_gitops.observed import ModelState, RegistryState
from mlflow_gitops.record import split_history


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def registry_document(
    state: RegistryState, aliases_from_stages: dict[str, str] | None = None
) -> dict[str, Any]:
    """The data of a registry.yaml for these models; with aliases_from_stages (e.g.
    {Production: champion}) the stages become aliases and the file declares no stage."""
    models = {name: _model(m, aliases_from_stages) for name, m in sorted(state.models.items())}
    return {"version": 1, "models": models}


def _model(model: ModelState, aliases_from_stages: dict[str, str] | None = None) -> dict[str, Any]:
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
    if counts["Production"] > 1 and aliases_from_stages is None:
        # older registries allowed several; describe them as they are rather than fail validation
        out["max_per_stage"] = {"Production": counts["Production"]}
    versions = []
    for v in model.versions:
        entry: dict[str, Any] = {"version": v.version}
        if aliases_from_stages is None:
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
) -> str:
    """YAML text with a header saying where it came from."""
    header = (
        "# yaml-language-server: $schema=registry.schema.json\n"
        f"# Imported from {source} by mlflow-gitops on {now:%Y-%m-%d}.\n"
    )
    body = yaml.dump(
        registry_document(state, aliases_from_stages),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return header + body
