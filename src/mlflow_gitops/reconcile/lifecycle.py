"""The lifecycle use cases: `propose` (a run into the file), `history` (a model's promotions)
and `rollback` (Production back to its previous holder in the file). Each reads the registry
the file names (or --tracking-uri) once, and edits the file's text, comments kept."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.history import Event, events
from mlflow_gitops.observed import RunSummary
from mlflow_gitops.propose import Edit, registered_versions
from mlflow_gitops.propose import propose as add_run
from mlflow_gitops.propose import rollback as roll_back
from mlflow_gitops.reconcile import connect
from mlflow_gitops.reconcile.plan import ignore
from mlflow_gitops.spec.model import canonical_stage


@dataclass(frozen=True)
class ProposeRequest:
    """What `propose` was given: which model, which experiment's runs, ranked how, and which
    run to add (None: the best), in which stage, to which file."""

    model: str
    experiment: str
    file: Path
    filter: str = ""
    order_by: str = "metrics.rmse ASC"
    stage: str | None = None
    run: str | None = None
    max_results: int = 5
    tracking_uri: str | None = None


@dataclass(frozen=True)
class Ranked:
    """The best runs of an experiment, and the versions each is already registered as."""

    experiment: str
    order_by: str
    runs: list[RunSummary]
    registered: dict[str, list[int]]


def propose_request(request: ProposeRequest, on_runs: Callable[[Ranked], None] = ignore) -> Edit:
    """Rank the runs (told to `on_runs` before the file is edited), add the chosen one to the
    model in the file and write it."""
    text, _, registry = connect.connect_file(request.tracking_uri, request.file)
    order = [request.order_by] if request.order_by else []
    runs = registry.search_runs(request.experiment, request.filter, order, request.max_results)
    if not runs:
        raise GitopsError(
            f"no run of {request.experiment!r} matches the filter {request.filter!r}", ""
        )
    # one read of the model tells every run's versions (never one call per run)
    live = registry.read([request.model]).models.get(request.model)
    registered = registered_versions(live, [r.run_id for r in runs])
    on_runs(Ranked(request.experiment, request.order_by, runs, registered))
    stage = str(canonical_stage(request.stage)) if request.stage else None
    chosen = request.run or runs[0].run_id
    edit = add_run(text, request.file, request.model, chosen, stage, live)
    request.file.write_text(edit.text, encoding="utf-8")
    return edit


@dataclass(frozen=True)
class HistoryRequest:
    """What `history` was given: the model, a version (None: all), the file (optional)."""

    model: str
    file: Path
    version: int | None = None
    tracking_uri: str | None = None


def history_request(request: HistoryRequest) -> list[Event]:
    """The model's recorded changes, newest first: from the audit record, the history blocks,
    or the registry's own timestamps."""
    _, uri, registry = connect.connect_file(request.tracking_uri, request.file, required=False)
    state = connect.read_models(registry, uri, [request.model]).models[request.model]
    return events(state, request.version, registry.read_records([request.model])[request.model])


@dataclass(frozen=True)
class RollbackRequest:
    """What `rollback` was given: the model and the file to edit."""

    model: str
    file: Path
    tracking_uri: str | None = None


def rollback_request(request: RollbackRequest) -> Edit:
    """Edit the file so Production goes back to its previous holder, and write it."""
    text, uri, registry = connect.connect_file(request.tracking_uri, request.file)
    state = connect.read_models(registry, uri, [request.model]).models[request.model]
    runs = registry.read_records([request.model])[request.model]
    edit = roll_back(text, request.file, request.model, state, runs)
    request.file.write_text(edit.text, encoding="utf-8")
    return edit
