"""Promotion across registries on MLflow: a version of one registry copied into another, matched
by provenance (registry/copy.py).

Same server (equal registry identities): a new version whose source is `models:/<model>/<version>`,
the request MlflowClient.copy_model_version makes. Other server: the source run's files (all of
them: a gate in the destination needs the run's preprocessor) and the model's files are copied into
a run of the destination's COPIES_EXPERIMENT that carries the source run's id, params, metrics and
tags, and the new version is registered from the model inside that run. Either way the version is
created with its provenance tags in the same request, so no copy exists without them.

Credentials: each side's REST stores send its own credentials (env.own_client); every file
transfer of one side runs inside `credentials_env(side.credentials)` (env.py), and MLflow's global
URIs are this side's only while its files move (a models:/ location resolves through them)."""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlflow_gitops.errors import DENIED, PermissionDenied, RegistryError
from mlflow_gitops.record import COPIES_EXPERIMENT, COPY_EXPERIMENT_TAG, SourceRef, provenance_tags
from mlflow_gitops.registry.copy import SourceVersion, find_copies, source_of
from mlflow_gitops.registry.mlflow.base import Connection, version_state
from mlflow_gitops.registry.mlflow.env import credentials_env
from mlflow_gitops.registry.mlflow.errors import first_line
from mlflow_gitops.registry.mlflow.reads import Reads
from mlflow_gitops.registry.mlflow.writes import Writes
from mlflow_gitops.secrets import redact

MODEL_FOLDER = "model"  # where a model that lived outside its run goes in the copy's run
# MLflow's log_batch limits
PARAMS_PER_BATCH, METRICS_PER_BATCH = 100, 900  # 1,000 entities a request in all


class Copies(Reads, Writes):
    """describe_source and copy_version of the registry port."""

    def describe_source(self, model: str, version: int) -> SourceVersion:
        """The version's run id and source, and whether its files can be read: the model's files
        are listed (an MLmodel must be among them) and so is the root of its run. A missing
        version or unreadable files come back as `problem`; an unreachable registry or a refusal
        raises."""
        ref = SourceRef(self.identity, model, version)
        where = redact(self.uri)
        mv = _model_version(self, model, version)
        if mv is None:
            return SourceVersion(
                ref, problem=f"version {version} of model '{model}' does not exist at {where}"
            )
        run_id = mv.run_id or None
        with self._errors(f"read {model}/{version} at", model=model, version=version):
            self.calls += 1
            location = str(self.writer.get_model_version_download_uri(model, str(version)))
        found = SourceVersion(ref, run_id, str(mv.source or ""), location)
        # listing goes through artifact repositories; a models:/ location (a same-server copy on
        # an MLflow 2.x server) is resolved through MLflow's global registry URI
        with self.mlflow_globals():
            problem = _unreadable(self, location, run_id)
        if problem:
            cannot = f"the files of version {version} of model '{model}' at {where} cannot be read"
            return replace(found, problem=f"{cannot}: {problem}")
        return found

    def copy_version(
        self, source: object, src_model: str, src_version: int, dest_model: str
    ) -> int:
        """Make `dest_model` here hold a copy of that version of `source`; returns the copy's
        version number. A copy made before (same provenance) is returned and nothing is
        registered. The registered model is created when absent. The copy carries the source
        version's own tags and description (not the tool's annotations nor its history) and the
        provenance tags. Every failure is a RegistryError (a full disk as much as a refusal), so
        apply records a failed step. Registry requests go through each side's own REST stores;
        only the file transfers set the credential variables (credentials_env)."""
        if not isinstance(source, Connection):
            raise RegistryError(
                f"cannot copy {src_model}/{src_version} into {dest_model} at "
                f"{redact(self.uri)}: its source registry is not an MLflow registry "
                f"({type(source).__name__}); nothing was registered",
                "name an MLflow registry as the source of `copy_from:`",
            )
        with self._errors(f"copy {src_model}/{src_version} into {dest_model} at"):
            return _copy_version(self, source, src_model, src_version, dest_model)


def _unreadable(registry: Connection, location: str, run_id: str | None) -> str:
    """Why the model's files or its run's files cannot be listed; "" when both can."""
    from mlflow.artifacts import list_artifacts

    try:
        registry.calls += 1
        names = {
            Path(f.path).name for f in list_artifacts(location, tracking_uri=registry.tracking_uri)
        }
    except Exception as exc:
        return f"listing {redact(location)} failed ({first_line(exc)[:300]})"
    if "MLmodel" not in names:
        return f"{redact(location)} holds no MLmodel file"
    if run_id:
        try:
            registry.calls += 1
            list_artifacts(run_id=run_id, tracking_uri=registry.tracking_uri)
        except Exception as exc:
            return f"listing the files of its run {run_id} failed ({first_line(exc)[:300]})"
    return ""


def _copy_version(
    dest: Copies,
    source: Connection,
    src_model: str,
    src_version: int,
    dest_model: str,
) -> int:
    ref = SourceRef(source.identity, src_model, src_version)
    before = dest.read([dest_model]).models.get(dest_model)
    made = find_copies(before, [ref]).get(ref)
    if made is not None:
        return made
    mv = _model_version(source, src_model, src_version)
    if mv is None:
        raise RegistryError(
            f"cannot copy {src_model}/{src_version}: version {src_version} of model "
            f"'{src_model}' does not exist at {redact(source.uri)}",
            "check the `copy_from:` entry (model/version) and the source registry",
        )
    origin = version_state(mv)
    run_id = origin.run_id
    tags = origin.user_tags | provenance_tags(ref, run_id)
    description = origin.user_description
    if dest.identity == source.identity:  # the same registry, credentials aside
        if before is None:
            dest.create_model(dest_model)
        number = _create_version(
            dest,
            dest_model,
            f"models:/{src_model}/{src_version}",
            run_id,
            tags,
            description,
            model_id=getattr(mv, "model_id", None),
        )
    else:
        with tempfile.TemporaryDirectory(prefix="mlflow-gitops-copy-") as folder:
            files = _download(source, src_model, src_version, run_id, Path(folder))
            # the run first: a user who may not write it leaves the registry untouched
            new_run, model_source = _upload(dest, ref, files)
            if before is None:
                dest.create_model(dest_model)
            number = _create_version(
                dest, dest_model, model_source, new_run, tags, description, model_id=None
            )
    _drop_duplicates(dest, dest_model, ref, number)
    return number


def _model_version(registry: Connection, model: str, version: int) -> Any | None:
    """The MLflow model version, or None when the model or the version does not exist."""
    from mlflow.exceptions import MlflowException

    doing = f"read {model}/{version} at"
    with registry._errors(doing, operation="read", model=model, version=version):
        try:
            registry.calls += 1
            return registry.writer.get_model_version(model, str(version))
        except MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise


@dataclass(frozen=True)
class _Files:
    """A source version's files on local disk, with what its run held."""

    run: Any | None  # the source run (MLflow entity), None for a version without a run
    run_folder: Path  # every file of the run, as laid out there
    model_folder: Path | None  # the model's files when they live outside the run
    model_path: str  # where the model is inside the copy's run


def _download(
    source: Connection, model: str, version: int, run_id: str | None, folder: Path
) -> _Files:
    """The run's files and the model's, downloaded with the source's credentials only."""
    from mlflow.artifacts import download_artifacts

    doing = f"download the files of {model}/{version} from"
    # downloads go through artifact repositories (see describe_source)
    with source.mlflow_globals(), source._errors(doing):
        source.calls += 1
        location = str(source.writer.get_model_version_download_uri(model, str(version)))
        run_folder = folder / "run"
        run_folder.mkdir()
        run = None
        if run_id:
            source.calls += 2  # the run, then its files (one request per folder and file)
            run = source.client.get_run(run_id)
            download_artifacts(
                run_id=run_id, dst_path=str(run_folder), tracking_uri=source.tracking_uri
            )
            root = str(run.info.artifact_uri).rstrip("/") + "/"
            if location.startswith(root):  # an MLflow 2.x-style model, logged inside its run
                inside = location[len(root) :].strip("/")
                if (run_folder / inside / "MLmodel").is_file():
                    return _Files(run, run_folder, None, inside)
        source.calls += 1
        # the files land in a folder named like the URI's last part: the returned path
        model_folder = Path(
            download_artifacts(
                artifact_uri=location,
                dst_path=str(folder / "model"),
                tracking_uri=source.tracking_uri,
            )
        )
    if not (model_folder / "MLmodel").is_file():
        raise RegistryError(
            f"cannot copy {model}/{version}: its files at {redact(location)} hold no MLmodel",
            "the version's source is not an MLflow model; register one that is",
        )
    path = MODEL_FOLDER
    while (run_folder / path).exists():  # the run already has a folder of that name
        path = "copied-" + path
    return _Files(run, run_folder, model_folder, path)


def _upload(dest: Connection, ref: SourceRef, files: _Files) -> tuple[str, str]:
    """A run in COPIES_EXPERIMENT with the source run's params, metrics, tags and files, and the
    model's files; returns (run id, the model's URI inside it). A 403 names the experiment."""
    try:
        return _log_copy_run(dest, ref, files)
    except PermissionDenied as exc:
        raise PermissionDenied(
            f"{DENIED}: {dest.user} may not write the run that holds the copy of {ref} in "
            f"the experiment {COPIES_EXPERIMENT} at {redact(dest.uri)}",
            f"ask an MLflow admin to grant EDIT on the experiment {COPIES_EXPERIMENT} (whoever "
            "creates it holds MANAGE), or copy as a user who holds it; nothing was registered",
        ) from exc


def _log_copy_run(dest: Connection, ref: SourceRef, files: _Files) -> tuple[str, str]:
    from mlflow.entities import Metric, Param, RunStatus

    run = files.run
    run_tags = provenance_tags(ref, run.info.run_id if run else None)
    if run is not None:
        user_tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        run_tags = user_tags | run_tags
        run_tags[COPY_EXPERIMENT_TAG] = str(run.info.experiment_id)
    with dest._errors(f"create the run that holds the copy (experiment {COPIES_EXPERIMENT}) at"):
        experiment = dest._experiment(COPIES_EXPERIMENT, "the copies' experiment", create=True)
        assert experiment is not None
        dest.calls += 1
        created = dest.client.create_run(
            experiment,
            start_time=int(run.info.start_time) if run and run.info.start_time else None,
            tags=run_tags,
            run_name=(run.info.run_name if run else None) or f"copy of {ref.model}/{ref.version}",
        )
        new = str(created.info.run_id)
        if run is not None:
            params = [Param(k, v) for k, v in run.data.params.items()]
            metrics = [
                Metric(m.key, m.value, int(m.timestamp), int(m.step or 0))
                for m in getattr(run.data, "_metric_objs", [])  # the latest value of each
            ]
            batches = max(
                -(-len(params) // PARAMS_PER_BATCH), -(-len(metrics) // METRICS_PER_BATCH)
            )
            for i in range(batches):
                dest.calls += 1
                dest.client.log_batch(
                    new,
                    params=params[i * PARAMS_PER_BATCH : (i + 1) * PARAMS_PER_BATCH],
                    metrics=metrics[i * METRICS_PER_BATCH : (i + 1) * METRICS_PER_BATCH],
                )
        with credentials_env(dest.credentials):  # uploads go through artifact repositories
            if any(files.run_folder.iterdir()):
                dest.calls += 2
                dest.client.log_artifacts(new, str(files.run_folder))
            if files.model_folder is not None:
                dest.calls += 2
                dest.client.log_artifacts(new, str(files.model_folder), files.model_path)
        dest.calls += 1
        dest.client.set_terminated(new, RunStatus.to_string(RunStatus.FINISHED))
        root = str(created.info.artifact_uri).rstrip("/")
    return new, f"{root}/{files.model_path}"


def _create_version(
    dest: Connection,
    name: str,
    source: str,
    run_id: str | None,
    tags: dict[str, str],
    description: str,
    model_id: str | None,
) -> int:
    """One create-model-version request with the provenance tags, then wait until READY."""
    extra = {"model_id": model_id} if model_id else {}

    def create() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dest.writer.create_model_version(
                name,
                source,
                run_id=run_id,
                tags=tags,
                description=description or None,
                await_creation_for=300,
                **extra,
            )

    mv = dest._call("register version", name, create)
    return int(mv.version)


def _drop_duplicates(dest: Copies, name: str, ref: SourceRef, keep: int) -> None:
    """MLflow retries a POST whose answer was lost: copies of the same source other than the one
    MLflow returned were made by this call (there was none before it) and are deleted."""
    after = dest.read([name]).models.get(name)
    for version in after.versions if after else ():
        if version.version != keep and source_of(version) == ref:
            dest.delete_version(name, version.version)
