"""Which part of a tree a command covers: --registry and --model, checked against the tree."""

from __future__ import annotations

from collections.abc import Sequence

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.spec.model import DEFAULT_REGISTRY
from mlflow_gitops.spec.tree import DeclaredModel, LoadedTree


def select(
    tree: LoadedTree, registries: Sequence[str], models: Sequence[str]
) -> dict[str, list[DeclaredModel]]:
    """The selected registries (declared order) and their selected models; an unknown name is
    an error that lists the known ones. With --model, a registry without any of the models is
    not selected (it is neither read nor changed)."""
    order = list(tree.registries) or [DEFAULT_REGISTRY]
    unknown = [r for r in registries if r not in order]
    if unknown:
        raise GitopsError(
            f"unknown registry {', '.join(map(repr, unknown))} (--registry); "
            f"{tree.root.name} declares: {', '.join(order)}",
            "name a registry declared under registries: (a file without registries: has one, "
            f"'{DEFAULT_REGISTRY}')",
        )
    chosen = [r for r in order if not registries or r in registries]
    out: dict[str, list[DeclaredModel]] = {}
    for r in chosen:
        declared = tree.models_in(r)
        if models:
            declared = [m for m in declared if m.name in models]
            if not declared:
                continue
        out[r] = declared
    if models:
        found = {m.name for ms in out.values() for m in ms}
        missing = [m for m in models if m not in found]
        if missing:
            known = sorted({m.name for r in chosen for m in tree.models_in(r)})
            listed = ", ".join(known[:20]) + (
                f" and {len(known) - 20} more" if len(known) > 20 else ""
            )
            raise GitopsError(
                f"no model {', '.join(map(repr, missing))} (--model) in "
                f"{'registry ' + ', '.join(chosen) if registries else tree.root.name}; "
                f"declared: {listed or 'none'}",
                "name a model the tree declares (names are case-sensitive)",
            )
    return out


def copy_sources(chosen: dict[str, list[DeclaredModel]]) -> set[str]:
    """The registries the selected models copy versions from (copy_from: registry:model/v)."""
    return {
        source.registry
        for models in chosen.values()
        for m in models
        for entry in m.spec.versions
        if (source := m.copy_source(entry)) is not None and source.registry
    }
