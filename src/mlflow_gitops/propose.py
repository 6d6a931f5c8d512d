"""`propose` and `rollback`: edits of registry.yaml that go through a pull request like any other.
Pure functions of the file's text and values read from the registry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.history import previous_holder
from mlflow_gitops.observed import ModelState, RunSummary
from mlflow_gitops.spec.edit import add_entry, diff, set_entry_field
from mlflow_gitops.spec.load import load_text

_ORDER = re.compile(r"^\s*metrics\.`?(?P<metric>[^`\s]+)`?")


@dataclass(frozen=True)
class Edit:
    """The file's new text, the diff to show, and a one-line summary."""

    text: str
    diff: str
    summary: str


def ordered_metric(order_by: str | None) -> str | None:
    """`metrics.rmse ASC` -> `rmse`."""
    match = _ORDER.match(order_by or "")
    return match["metric"] if match else None


def runs_table(runs: list[RunSummary], order_by: str | None) -> str:
    """The candidates, best first: run id, the ordered metric, training time, size, type."""
    metric = ordered_metric(order_by) or "rmse"
    header = f"  {'#':>2}  {'run id':<32}  {metric:>10}  {'train s':>8}  {'size MB':>8}  model type"
    lines = [header]
    for i, run in enumerate(runs, 1):
        value = run.metrics.get(metric)
        size = run.metrics.get("model_size_mb")
        seconds = run.training_seconds
        lines.append(
            f"  {i:>2}  {run.run_id:<32}  {_num(value):>10}  {_num(seconds):>8}  {_num(size):>8}  {run.model_type}"
        )
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def propose(text: str, path: Path, model: str, run_id: str, stage: str | None) -> Edit:
    """Add the run as a new version entry of the model (the file's formatting kept)."""
    loaded = load_text(text, path)
    spec = loaded.spec.models.get(model)
    for entry in spec.versions if spec else []:
        if entry.run is not None and run_id.startswith(entry.run.split("/")[0]):
            raise GitopsError(f"run {run_id} is already in {path.name} under {model}", "")
    fields: list[tuple[str, str | int]] = [("run", f"{run_id}/model")]
    if stage:
        fields.append(("stage", stage))
    new = add_entry(text, model, fields)
    load_text(new, path)  # the edit must leave a valid file
    where = f" in {stage}" if stage else ""
    return Edit(new, diff(text, new, path.name), f"added run {run_id} to {model}{where}")


def rollback(text: str, path: Path, model: str, live: ModelState) -> Edit:
    """Production back to the version that held it before the current holder."""
    previous = previous_holder(live, "Production")
    if previous is None:
        raise GitopsError(
            f"no earlier Production version of {model} in its history",
            "`mlflow-gitops history` shows what the registry recorded",
        )
    new = set_entry_field(text, model, ("version", str(previous)), "stage", "Production")
    for current in (v.version for v in live.versions if v.stage == "Production"):
        new = set_entry_field(new, model, ("version", str(current)), "stage", "Archived")
    loaded = load_text(new, path)
    spec = loaded.spec.models.get(model)
    if spec is not None:
        declared = [e for e in spec.versions if e.stage == "Production"]
        if any(e.version != previous for e in declared):
            raise GitopsError(
                f"{path.name} declares another Production version of {model}",
                "edit the file by hand: it names Production by run or source",
            )
    return Edit(new, diff(text, new, path.name), f"{model}: Production back to version {previous}")
