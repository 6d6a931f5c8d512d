"""`propose` and `rollback`: edits of registry.yaml that go through a pull request like any other.
Pure functions of the file's text and values read from the registry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.history import previous_holder
from mlflow_gitops.observed import ModelState
from mlflow_gitops.plan.match import matches_run as _matches_run
from mlflow_gitops.record.run import AuditRun
from mlflow_gitops.spec.edit import add_entry, diff, set_entry_field
from mlflow_gitops.spec.load import load_text


@dataclass(frozen=True)
class Edit:
    """The file's new text, the diff to show, and a one-line summary."""

    text: str
    diff: str
    summary: str


def registered_versions(live: ModelState | None, run_ids: Sequence[str]) -> dict[str, list[int]]:
    """The versions of the model registered from each run's `model`, oldest first."""
    versions = live.versions if live else ()
    return {
        run_id: [v.version for v in versions if _matches_run(v, run_id, "model")]
        for run_id in run_ids
    }


def propose(
    text: str,
    path: Path,
    model: str,
    run_id: str,
    stage: str | None,
    live: ModelState | None = None,
) -> Edit:
    """Add the run to the model (the file's formatting kept): as `run:` when it is not registered
    yet, else as its version (the newest, if the run was registered several times), so applying
    the file never registers it a second time."""
    loaded = load_text(text, path)
    spec = loaded.spec.models.get(model)
    for entry in spec.versions if spec else []:
        if entry.run is not None and run_id.startswith(entry.run.split("/")[0]):
            raise GitopsError(f"run {run_id} is already in {path.name} under {model}", "")
    registered = registered_versions(live, [run_id])[run_id]
    where = f" in {stage}" if stage else ""
    if not registered:
        fields: list[tuple[str, str | int]] = [("run", f"{run_id}/model")]
        if stage:
            fields.append(("stage", stage))
        new = add_entry(text, model, fields)
        summary = f"added run {run_id} to {model}{where}"
    else:
        number = registered[-1]
        listed = next((e for e in spec.versions if e.version == number), None) if spec else None
        if listed is not None and (stage is None or listed.stage == stage):
            raise GitopsError(
                f"run {run_id} is version {number} of {model}, already in {path.name}"
                + (f" in {stage}" if stage else ""),
                "pass --stage to move it, or edit its entry",
            )
        if stage:
            new = set_entry_field(text, model, ("version", str(number)), "stage", stage)
        else:
            new = add_entry(text, model, [("version", number)])
        summary = (
            f"{'set' if listed else 'added'} version {number} of {model} (run {run_id}){where}"
        )
    load_text(new, path)  # the edit must leave a valid file
    return Edit(new, diff(text, new, path.name), summary)


def rollback(
    text: str, path: Path, model: str, live: ModelState, runs: Sequence[AuditRun] = ()
) -> Edit:
    """Production back to the version that held it before the current holder (from the audit
    record `runs`, then the history blocks)."""
    previous = previous_holder(live, "Production", runs)
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
