"""The `plan` use case: load the tree, read and plan each selected registry (concurrently),
check the sources of copies, and save the plan when asked."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.plan.changes import CopyVersion, Plan
from mlflow_gitops.plan.tree import TreePlan
from mlflow_gitops.plan.webhooks import webhooks_file
from mlflow_gitops.reconcile import connect
from mlflow_gitops.reconcile.planning import (
    Opened,
    PlanFile,
    Planned,
    check_sources,
    concurrently,
    files_of,
    merge_plans,
    plan_files,
    tree_plan,
)
from mlflow_gitops.registry.port import RegistryPort
from mlflow_gitops.render.json import render_saved
from mlflow_gitops.spec.model import DEFAULT_REGISTRY
from mlflow_gitops.spec.select import copy_sources, select
from mlflow_gitops.spec.tree import load_tree


def ignore(_: object) -> None:
    """Progress (or a plan) nobody shows."""


@dataclass(frozen=True)
class PlanRequest:
    """What `plan` (or `comment`) was given. `now` is the clock of the whole command.
    `registries` and `models` (empty: all) restrict the plan to part of the tree."""

    file: Path
    tracking_uri: str | None
    now: datetime
    out: Path | None = None  # also save the plan here, for `apply PLAN`
    local_default: bool = True  # False: never sqlite:///mlflow.db (pull-request comments)
    registries: tuple[str, ...] = ()
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlanOutcome:
    """The plan of every selected registry (in declared order), the TreePlan every renderer
    takes, and the folder of the root file."""

    opened: tuple[Opened, ...]
    tree: TreePlan
    folder: Path
    sources: dict[str, RegistryPort] = field(default_factory=dict)  # every registry opened

    @property
    def planned(self) -> Planned:
        """The plan of the first (for a file without registries:, the only) registry."""
        return self.opened[0].planned

    @property
    def uri(self) -> str:
        return self.opened[0].uri

    @property
    def plan(self) -> Plan:
        """The one registry's plan; over several registries, all their changes (use `tree`
        to tell the registries apart)."""
        if len(self.opened) == 1:
            return self.planned.plan
        return merge_plans([o.planned.plan for o in self.opened])


def plan_request(request: PlanRequest, progress: Callable[[str], None] = ignore) -> PlanOutcome:
    """Load the tree, read and plan each selected registry (concurrently), check the sources
    of copies; save the plan when asked."""
    tree = load_tree(request.file)
    chosen = select(tree, request.registries, request.models)
    if request.tracking_uri and len(chosen) > 1:
        raise GitopsError(
            f"--tracking-uri names one registry, but {len(chosen)} are selected "
            f"({', '.join(chosen)})",
            "select one with --registry NAME, or drop --tracking-uri (each registry's URI comes "
            "from registries: in the root file)",
        )
    if request.out is not None and len(chosen) > 1:
        raise GitopsError(
            f"a saved plan covers one registry, but {len(chosen)} are selected "
            f"({', '.join(chosen)}); nothing was read",
            "save one plan per registry (plan --registry NAME --out NAME.json), or apply the "
            "tree directly",
        )
    # the sources of copies: registries the selected models copy from
    sources = copy_sources(chosen)
    where = {
        name: connect.resolve(
            tree,
            name,
            request.tracking_uri if name in chosen else None,
            local_default=request.local_default,
        )
        for name in [*chosen, *sorted(sources - set(chosen))]
    }
    identities = {name: endpoint.identity for name, endpoint in where.items()}
    opened: dict[str, RegistryPort] = {}
    for name, endpoint in where.items():
        if name in chosen:  # a source registry is opened only when a copy needs it
            opened[name] = connect.open_with(endpoint)
    opening = threading.Lock()

    def source(name: str) -> RegistryPort:
        with opening:  # the registries are planned concurrently
            if name not in opened:
                opened[name] = connect.open_with(where[name])
            return opened[name]

    def source_run(name: str, model: str, version: int) -> str | None:
        """The run id of a version to copy, asked of its registry: only when the destination
        holds a copy of that model and version recorded under another registry identity."""
        return source(name).describe_source(model, version).run_id

    def plan_one(name: str) -> Opened:
        endpoint = where[name]
        uri = endpoint.registry_uri
        files = files_of(tree, chosen[name])
        hooks = webhooks_file(tree, name, [f.loaded.path for f in files])
        if hooks is not None and not request.models:  # --model plans no webhooks
            files.append(PlanFile(*hooks))
        progress(
            f"reading {sum(len(f.loaded.spec.models) for f in files)} models from {uri} and "
            "running gates ..."
        )
        planned = plan_files(
            files,
            opened[name],
            # the gates of a copy not made yet read its source in its own registry
            connect.open_evidence(endpoint, where),
            request.now,
            name=name,
            identities=identities,
            source_run=source_run,
        )
        return Opened(name, uri, opened[name], planned, endpoint.tracking_uri)

    # gate evidence names its registry in every request (no MLflow global): all concurrently
    done = concurrently(plan_one, list(chosen))
    copies = [
        (o.name, c) for o in done for c in o.planned.plan.changes if isinstance(c, CopyVersion)
    ]
    for _, change in copies:
        source(change.source_registry)
    notes = check_sources(tree, copies, opened, {o.name: o.planned.observed for o in done})
    done = [_noted(o, notes.get(o.name, ())) for o in done]
    if request.out is not None:
        if copies:
            raise GitopsError(
                "this plan copies versions from another registry, and a saved plan holds one "
                "registry; nothing was saved",
                "apply the tree directly (mlflow-gitops apply registry.yaml)",
            )
        only = done[0]
        save_plan(
            only.planned.plan,
            request.out,
            only.tracking_uri or only.uri,
            request.file,
            request.now,
            name=only.name,
            registry_uri=only.uri,
        )
    selected = (tuple(request.registries), tuple(request.models))
    return PlanOutcome(
        tuple(done), tree_plan(done, chosen, selected, tree), tree.root.folder, dict(opened)
    )


def _noted(opened: Opened, notes: tuple[str, ...]) -> Opened:
    """The registry's plan with these notes added (what copies do with leftover runs)."""
    if not notes:
        return opened
    plan = opened.planned.plan
    planned = replace(opened.planned, plan=plan.model_copy(update={"notes": (*plan.notes, *notes)}))
    return replace(opened, planned=planned)


def save_plan(
    plan: Plan,
    path: Path,
    tracking_uri: str,
    file: Path,
    now: datetime,
    *,
    name: str = DEFAULT_REGISTRY,
    registry_uri: str | None = None,
) -> None:
    """Write plan.json: the changes, a fingerprint of every model it read, and which registry
    of the tree (`name`) it was made against, whose credentials apply uses; `registry_uri`:
    where its models live (None: in the tracking server)."""
    text = render_saved(
        plan, tracking_uri=tracking_uri, file=file, now=now, name=name, registry_uri=registry_uri
    )
    path.write_text(text, encoding="utf-8")
