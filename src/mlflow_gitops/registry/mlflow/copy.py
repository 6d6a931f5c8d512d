"""Promotion across registries on MLflow: a version of one registry copied into another, matched
by provenance (registry/copy.py).

Same server (equal registry identities): a new version whose source is `models:/<model>/<version>`,
the request MlflowClient.copy_model_version makes. Other server: the source run's files (all of
them: a gate in the destination needs the run's preprocessor) and the model's files are copied into
a run of the destination's copies experiment (COPIES_EXPERIMENT; in a Databricks workspace
under /Shared, a workspace path) that carries the source run's id, params, metrics and
tags, and the new version is registered from the model inside that run. Either way the version is
created with its provenance tags in the same request, so no copy exists without them.

An apply killed after the copy's run was written but before the version was registered leaves
that run behind: the next copy of the same source registers from it when it is finished (its
files all uploaded) and deletes it when it is not (registry/copy.leftovers).

Nothing lost: every registration is handed the model's files in a temporary folder the tool
made (local_model_path), never a location MLflow would download itself. MLflow's Unity Catalog
store downloads the source when it is given none and then deletes the folder the download
returned (mlflow/store/_unity_catalog/registry/rest_store.py:883-909, `_local_model_dir`,
`shutil.rmtree(local_model_dir)` at line 909 of MLflow 3.17.2); a download of a `file:` location,
or of a models:/ location whose files are on local disk, returns the source folder itself
(mlflow/store/artifact/local_artifact_repo.py:194-196), so that store would delete the source's
own files. Other stores ignore local_model_path.

Credentials: each side's REST stores send its own credentials (env.own_client); every file
transfer of one side runs inside `credentials_env(side.credentials)` (env.py), and MLflow's global
URIs are this side's only while its files move (a models:/ location resolves through them)."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlflow_gitops.errors import DENIED, PermissionDenied, RegistryError
from mlflow_gitops.record import (
    COPIES_EXPERIMENT,
    COPY_EXPERIMENT_TAG,
    COPY_MODEL_PATH_TAG,
    COPY_MODEL_TAG,
    COPY_REGISTRY_TAG,
    COPY_RUN_TAG,
    COPY_VERSION_TAG,
    SourceRef,
    provenance_tags,
    workspace_experiment,
)
from mlflow_gitops.registry.copy import (
    Copied,
    CopyRun,
    SourceVersion,
    find_copies,
    leftovers,
    source_of,
)
from mlflow_gitops.registry.mlflow.base import Connection, version_state
from mlflow_gitops.registry.mlflow.env import credentials_env
from mlflow_gitops.registry.mlflow.errors import first_line
from mlflow_gitops.registry.mlflow.reads import Reads
from mlflow_gitops.registry.mlflow.writes import Writes
from mlflow_gitops.registry.signature import missing_signature
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
            if not problem:
                found = replace(found, unsigned=_unsigned(self, location))
        if problem:
            cannot = f"the files of version {version} of model '{model}' at {where} cannot be read"
            return replace(found, problem=f"{cannot}: {problem}")
        return found

    @property
    def requires_signature(self) -> bool:
        """Whether this registry refuses a model version without a signature (inputs and
        outputs): Unity Catalog (MLflow's UC store validates every registration:
        mlflow/store/_unity_catalog/registry/rest_store.py:819, _validate_model_signature)."""
        return self.unity_catalog

    @property
    def copies_experiment(self) -> str:
        """The experiment that holds the copies' runs: a workspace path when the tracking server
        is a Databricks workspace (its experiments are named by path), else COPIES_EXPERIMENT."""
        return workspace_experiment(COPIES_EXPERIMENT, self.tracking_uri)

    def copy_runs(self, ref: SourceRef, run_id: str | None) -> tuple[CopyRun, ...]:
        """The live runs of this registry's copies experiment that hold a copy of that source:
        the same source run id (whatever registry identity they recorded), or, for a source
        without a run, the same registry identity; model and version alike. One search."""
        from mlflow.entities import ViewType

        name = self.copies_experiment
        doing = f"look for earlier copies of {ref} in the experiment {name} at"
        with self._errors(doing):
            experiment = self._experiment(name, "the copies' experiment", False)
            if experiment is None:
                return ()
            # tag values compared in Python: a model name may hold quotes
            flt = f"tags.`{COPY_VERSION_TAG}` = '{ref.version}'"
            if run_id:
                flt += f" and tags.`{COPY_RUN_TAG}` = '{run_id}'"
            self.calls += 1
            runs = self.client.search_runs(
                [experiment], flt, run_view_type=ViewType.ACTIVE_ONLY, max_results=1000
            )
        out = []
        for run in sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id)):
            tags = run.data.tags
            if tags.get(COPY_MODEL_TAG) != ref.model:
                continue
            if not run_id and tags.get(COPY_REGISTRY_TAG) != ref.registry:
                continue
            out.append(
                CopyRun(
                    str(run.info.run_id),
                    run.info.status == "FINISHED",
                    tags.get(COPY_MODEL_PATH_TAG) or None,
                    str(run.info.artifact_uri),
                    name,
                )
            )
        return tuple(out)

    def copy_version(
        self, source: object, src_model: str, src_version: int, dest_model: str
    ) -> Copied:
        """Make `dest_model` here hold a copy of that version of `source`; returns the copy's
        version number, and what it did with the runs an interrupted apply left. A copy made
        before (same provenance: registry identity, or the source run's id) is returned and
        nothing is registered. The registered model is created when absent. The copy carries
        the source version's own tags and description (not the tool's annotations nor its
        history) and the provenance tags. Every failure is a RegistryError (a full disk as much
        as a refusal), so apply records a failed step. Registry requests go through each
        side's own REST stores; only the file transfers set the credential variables
        (credentials_env)."""
        if not isinstance(source, Connection):
            raise RegistryError(
                f"cannot copy {src_model}/{src_version} into {dest_model} at "
                f"{redact(self.uri)}: its source registry is not an MLflow registry "
                f"({type(source).__name__}); nothing was registered",
                "name an MLflow registry as the source of `copy_from:`",
            )
        with self._errors(f"copy {src_model}/{src_version} into {dest_model} at"):
            return _copy_version(self, source, src_model, src_version, dest_model)


def _unsigned(registry: Connection, location: str) -> str:
    """Why a registry that requires a signature would refuse the model at `location`
    (registry/signature.missing_signature); "" when it has one or its MLmodel cannot be read
    (the listing said it is there: the registration will say what is wrong)."""
    from mlflow.artifacts import load_text

    try:
        registry.calls += 1
        text = load_text(location.rstrip("/") + "/MLmodel")  # into a temporary folder of its own
    except Exception:
        return ""
    return missing_signature(text) or ""


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
) -> Copied:
    ref = SourceRef(source.identity, src_model, src_version)
    mv = _model_version(source, src_model, src_version)
    if mv is None:
        raise RegistryError(
            f"cannot copy {src_model}/{src_version}: version {src_version} of model "
            f"'{src_model}' does not exist at {redact(source.uri)}",
            "check the `copy_from:` entry (model/version) and the source registry",
        )
    origin = version_state(mv)
    run_id = origin.run_id
    before = dest.read([dest_model]).models.get(dest_model)
    # an earlier copy, made through this registry URI or another one of the same server
    made = find_copies(before, [ref], {ref: run_id} if run_id else None).get(ref)
    if made is not None:
        return Copied(made)
    tags = origin.user_tags | provenance_tags(ref, run_id)
    description = origin.user_description
    detail = ""
    # every registration is handed the model's files in this folder (the module's docstring)
    with tempfile.TemporaryDirectory(prefix="mlflow-gitops-copy-") as folder:
        if dest.identity == source.identity:  # the same registry, credentials aside
            local = _download_model(source, src_model, src_version, Path(folder) / "model")
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
                local=local,
            )
        else:
            used = {v.run_id for v in before.versions if v.run_id} if before else set()
            with _in_copies_experiment(dest, ref):
                left = leftovers(dest.copy_runs(ref, run_id), used)
                for run in left.remove:
                    with dest._errors(f"delete the unfinished run {run.run_id} of a copy at"):
                        dest.calls += 1
                        dest.client.delete_run(run.run_id)
            if left.reuse is not None and left.reuse.model_path:
                new_run = left.reuse.run_id
                model_source = f"{left.reuse.artifact_uri.rstrip('/')}/{left.reuse.model_path}"
                local = _download_location(dest, model_source, Path(folder) / "model")
            else:
                files = _download(source, src_model, src_version, run_id, Path(folder))
                # the run first: a user who may not write it leaves the registry untouched
                new_run, model_source = _upload(dest, ref, files)
                local = files.model_folder or files.run_folder / files.model_path
            if before is None:
                dest.create_model(dest_model)
            number = _create_version(
                dest,
                dest_model,
                model_source,
                new_run,
                tags,
                description,
                model_id=None,
                local=local,
            )
            detail = left.sentence(done=True)
    _drop_duplicates(dest, dest_model, ref, number)
    return Copied(number, detail)


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


def _download_model(registry: Connection, model: str, version: int, folder: Path) -> Path:
    """The version's model files, downloaded into `folder` (the caller's temporary folder)."""
    doing = f"download the files of {model}/{version} from"
    with registry.mlflow_globals(), registry._errors(doing):
        registry.calls += 1
        location = str(registry.writer.get_model_version_download_uri(model, str(version)))
    return _download_location(registry, location, folder)


def _download_location(registry: Connection, location: str, folder: Path) -> Path:
    """The model files at `location`, copied into `folder`: a download given a destination
    folder copies even a local location (LocalArtifactRepository.download_artifacts), so the
    folder returned is always the tool's own, never the registry's files."""
    from mlflow.artifacts import download_artifacts

    doing = f"download the model files at {redact(location)} from"
    # downloads go through artifact repositories; a models:/ location resolves through the
    # registry's URI as MLflow's global
    with registry.mlflow_globals(), registry._errors(doing):
        registry.calls += 1
        # the files land in a folder named like the URI's last part: the returned path
        got = Path(
            download_artifacts(
                artifact_uri=location, dst_path=str(folder), tracking_uri=registry.tracking_uri
            )
        )
    if not got.resolve().is_relative_to(folder.resolve()):  # never hand on a registry's folder
        raise RegistryError(
            f"cannot copy the model at {redact(location)}: MLflow returned {got}, outside the "
            f"temporary folder {folder}",
            "report this as a bug of mlflow-gitops; nothing was registered",
        )
    if not (got / "MLmodel").is_file():
        raise RegistryError(
            f"cannot copy the model at {redact(location)}: its files hold no MLmodel",
            "the version's source is not an MLflow model; register one that is",
        )
    return got


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
    model_folder = _download_location(source, location, folder / "model")
    path = MODEL_FOLDER
    while (run_folder / path).exists():  # the run already has a folder of that name
        path = "copied-" + path
    return _Files(run, run_folder, model_folder, path)


def _upload(dest: Copies, ref: SourceRef, files: _Files) -> tuple[str, str]:
    """A run in the copies experiment with the source run's params, metrics, tags and files, and the
    model's files; returns (run id, the model's URI inside it). A 403 names the experiment."""
    with _in_copies_experiment(dest, ref):
        return _log_copy_run(dest, ref, files)


@contextmanager
def _in_copies_experiment(dest: Copies, ref: SourceRef) -> Iterator[None]:
    """A 403 on the copies' experiment (looking for leftover runs, writing the run) names the
    experiment and the permission a copy needs there."""
    try:
        yield
    except PermissionDenied as exc:
        raise PermissionDenied(
            f"{DENIED}: {dest.user} may not write the run that holds the copy of {ref} in "
            f"the experiment {dest.copies_experiment} at {redact(dest.uri)}",
            f"ask an MLflow admin to grant EDIT on the experiment {dest.copies_experiment} (whoever "
            "creates it holds MANAGE), or copy as a user who holds it; nothing was registered",
        ) from exc


def _log_copy_run(dest: Copies, ref: SourceRef, files: _Files) -> tuple[str, str]:
    from mlflow.entities import Metric, Param, RunStatus

    run = files.run
    run_tags = provenance_tags(ref, run.info.run_id if run else None)
    run_tags[COPY_MODEL_PATH_TAG] = files.model_path
    if run is not None:
        user_tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        run_tags = user_tags | run_tags
        run_tags[COPY_EXPERIMENT_TAG] = str(run.info.experiment_id)
    name = dest.copies_experiment
    with dest._errors(f"create the run that holds the copy (experiment {name}) at"):
        experiment = dest._experiment(name, "the copies' experiment", create=True)
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
    local: Path,
) -> int:
    """One create-model-version request with the provenance tags, then wait until READY.
    `local`: the model's files in the tool's temporary folder, for stores that upload them."""
    extra = {"model_id": model_id} if model_id else {}

    # Unity Catalog's store looks a model_id's logged model up with mlflow.get_logged_model,
    # through MLflow's global tracking URI: this registry's for the request, not the process's
    # default (MLflow 3's sqlite:///mlflow.db, made in the user's working folder, where the
    # model is not found and the version loses its link to it)
    def create() -> Any:
        with warnings.catch_warnings(), dest.mlflow_globals() if model_id else nullcontext():
            warnings.simplefilter("ignore")
            return dest.writer.create_model_version(
                name,
                source,
                run_id=run_id,
                tags=tags,
                description=description or None,
                await_creation_for=300,
                local_model_path=str(local),
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
