"""Evidence from MLflow for the gates: run metrics, model size and signature, and a streamed
evaluation of candidate and baseline on held-out data. The only gate module that touches I/O."""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow_gitops.gates.data import DataError, batches, open_source
from mlflow_gitops.gates.data import identity as data_identity
from mlflow_gitops.gates.port import Evaluation, GateError, Side
from mlflow_gitops.gates.predict import Hook, Loaded, Scoring, named
from mlflow_gitops.spec.model import TABLE_PREFIX, EvaluateSpec

if TYPE_CHECKING:
    from mlflow_gitops.registry.copy import Credentials

STREAM_ROWS = 65_536


def data_location(data: str, folder: Path) -> str:
    """A path relative to registry.yaml's folder, or a URI as written."""
    if "://" in data:
        return data
    return str((folder / data).resolve())


class MlflowEvidence:
    """Evidence through MLflow; each model is loaded at most once per process.

    Every model, run and file is read from the registry its side names (`Side.registry`: a name
    in `registries`; None: this one), with that registry's URI and credentials only: its own
    MlflowClient over REST stores that send its credentials (registry/client.own_client), and
    its artifact downloads inside copy.credentials_env (MLflow's artifact repositories read the
    process's variables). No MLflow global is read or set, so registries plan concurrently."""

    def __init__(
        self,
        uri: str,
        credentials: Credentials | None = None,
        registries: Mapping[str, tuple[str, Credentials | None]] | None = None,
    ) -> None:
        self.where: dict[str | None, tuple[str, Credentials | None]] = {None: (uri, credentials)}
        self.where.update(registries or {})
        self.clients: dict[str | None, Any] = {}
        self.evaluations: dict[tuple[str, ...], Evaluation] = {}
        self.models: dict[tuple[str | None, str], Any] = {}
        self.folders: dict[tuple[str | None, str], Path] = {}
        self.run_ids: dict[tuple[str | None, str], str | None] = {}
        self.preprocessors: dict[tuple[str | None, str | None, str], tuple[Any, bytes]] = {}
        self.loads = 0  # how many models were loaded: 0 when every verdict came from the cache

    def _registry(self, side: Side) -> tuple[str, Credentials | None]:
        found = self.where.get(side.registry)
        if found is None:
            raise GateError(
                f"the gates cannot read {side.uri} of registry '{side.registry}': it is not "
                "among the registries of this plan",
                "declare the registry under registries: in the root file",
            )
        return found

    def _client(self, registry: str | None) -> Any:
        if registry not in self.clients:
            from mlflow_gitops.registry.client import own_client

            uri, credentials = self.where[registry]
            self.clients[registry] = own_client(uri, credentials)
        return self.clients[registry]

    def _run_id(self, side: Side) -> str | None:
        """The side's run: as the plan read it, or for a version of another registry (the
        source of a copy), as that registry tells."""
        if side.run_id or side.registry is None or not side.uri.startswith("models:/"):
            return side.run_id
        key = (side.registry, side.uri)
        if key not in self.run_ids:
            self._registry(side)
            model, _, version = side.uri[len("models:/") :].rpartition("/")
            try:
                mv = self._client(side.registry).get_model_version(model, version)
            except Exception as exc:
                raise GateError(
                    f"cannot read {side.uri} in registry '{side.registry}': {str(exc)[:200]}"
                ) from None
            self.run_ids[key] = mv.run_id or None
        return self.run_ids[key]

    def run_metric(self, side: Side, key: str) -> float | None:
        run_id = self._run_id(side)
        if not run_id:
            raise GateError("the version has no source run, so it has no run metrics")
        try:
            metrics = self._client(side.registry).get_run(run_id).data.metrics
        except Exception as exc:
            raise GateError(f"cannot read run {run_id}: {str(exc)[:200]}") from None
        value = metrics.get(key)
        return None if value is None else float(value)

    def download(self, side: Side, path: str = "", doing: str = "download") -> Path:
        """The model's artifact folder (or one file of it), downloaded from its registry with
        that registry's credentials; the whole folder at most once."""
        from mlflow.artifacts import download_artifacts

        from mlflow_gitops.registry.copy import credentials_env

        key = (side.registry, side.uri)
        if key in self.folders:
            return self.folders[key] / path
        uri, credentials = self._registry(side)
        try:
            location = side.uri
            if side.uri.startswith("models:/"):
                model, _, version = side.uri[len("models:/") :].rpartition("/")
                location = str(
                    self._client(side.registry).get_model_version_download_uri(model, version)
                )
            if path:
                location = f"{location.rstrip('/')}/{path}"
            with credentials_env(credentials):
                local = Path(
                    download_artifacts(
                        artifact_uri=location,
                        dst_path=tempfile.mkdtemp(),
                        tracking_uri=uri,
                        registry_uri=uri,  # a models:/ location (2.x) is resolved there
                    )
                )
        except Exception as exc:
            raise GateError(f"cannot {doing} the model {side.uri}: {str(exc)[:300]}") from None
        if not path:
            self.folders[key] = local
        return local

    def model_size_mb(self, side: Side) -> float:
        folder = self.download(side)
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20

    def has_signature(self, side: Side) -> bool:
        from mlflow.models import Model

        mlmodel = self.download(side, "MLmodel", "read")
        try:
            return Model.load(str(mlmodel)).signature is not None
        except Exception as exc:
            raise GateError(f"cannot read the model {side.uri}: {str(exc)[:300]}") from None

    def data_digest(self, data: str, folder: Path) -> str:
        """The identity of the data as its store reports it: sha256 of local files, ETag or
        generation, size and mtime of objects (no object data is read); for table:<name>, its
        files as the Spark catalog lists them."""
        if data.startswith(TABLE_PREFIX):  # engine: spark only (validated)
            from mlflow_gitops.gates import spark

            return spark.table_digest(data)
        try:
            return data_identity(open_source(data, folder))
        except DataError as exc:
            raise GateError(exc.message, exc.hint) from None

    def hook_digest(self, ref: str, folder: Path) -> str:
        """The sha256 of the prepare hook's file: an edited hook scores every version again."""
        return hashlib.sha256(hook_path(ref, folder).read_bytes()).hexdigest()

    def load_model(self, side: Side) -> Any:
        """The side's pyfunc model, from its own registry only."""
        key = (side.registry, side.uri)
        if key not in self.models:
            import mlflow.pyfunc

            folder = self.download(side)
            try:
                self.models[key] = mlflow.pyfunc.load_model(str(folder))
            except Exception as exc:
                raise GateError(
                    f"cannot load the model {side.uri}: {type(exc).__name__}: {str(exc)[:300]}",
                    "check that its artifacts exist and that its library versions match this environment",
                ) from None
            self.loads += 1
        return self.models[key]

    def load_preprocessor(self, side: Side, artifact: str) -> tuple[Any, bytes]:
        """The unpickled preprocessor and its file's bytes, from the side's run only."""
        run_id = self._run_id(side)
        key = (side.registry, run_id, artifact)
        if key not in self.preprocessors:
            if not run_id:
                raise GateError(f"the model {side.uri} has no source run to take {artifact} from")
            from mlflow_gitops.registry.copy import credentials_env

            _, credentials = self._registry(side)
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    with credentials_env(credentials):
                        local = self._client(side.registry).download_artifacts(
                            run_id, artifact, tmp
                        )
                except Exception:
                    raise GateError(
                        f"run {run_id} has no artifact {artifact}",
                        "log the fitted preprocessor with the run, or remove preprocessor: "
                        "from the gate",
                    ) from None
                raw = Path(local).read_bytes()
            try:
                loaded = pickle.loads(raw)  # a run of a registry of this plan only
            except Exception as exc:
                raise GateError(f"cannot unpickle {artifact} of run {run_id}: {exc}") from None
            self.preprocessors[key] = (loaded, raw)
        return self.preprocessors[key]

    def load_sides(
        self, spec: EvaluateSpec, candidate: Side, baseline: Side | None
    ) -> tuple[Loaded, ...]:
        """Candidate and baseline ready to predict: every model first (a model that cannot load
        fails before any preprocessor is fetched), then each run's preprocessor."""
        sides = named(candidate, baseline)
        models = {name: self.load_model(side) for name, side in sides}
        if not spec.preprocessor:
            return tuple(Loaded(name, models[name]) for name, _ in sides)
        loaded = []
        for name, side in sides:
            preprocessor, raw = self.load_preprocessor(side, spec.preprocessor)
            digest = hashlib.sha256(raw).hexdigest()
            loaded.append(Loaded(name, models[name], preprocessor, digest))
        return tuple(loaded)

    def evaluate(
        self,
        spec: EvaluateSpec,
        folder: Path,
        candidate: Side,
        baseline: Side | None,
        latency_rows: int | None,
    ) -> Evaluation:
        key = (
            spec.model_dump_json(),
            str(folder),
            candidate.registry or "",
            candidate.uri,
            (baseline.registry or "") if baseline else "",
            baseline.uri if baseline else "",
            str(latency_rows or 0),
        )
        if key in self.evaluations:
            return self.evaluations[key]
        prepare = load_hook(spec.prepare, folder) if spec.prepare else None
        sides = self.load_sides(spec, candidate, baseline)  # a model that cannot load fails here
        scoring = Scoring(spec, prepare, sides, latency_rows or 0)
        if spec.engine == "spark":
            from mlflow_gitops.gates import spark

            spark.score(self, scoring, folder, named(candidate, baseline))
        else:
            for frame in stream_frames(data_location(spec.data, folder), STREAM_ROWS):
                scoring.add(frame)
        self.evaluations[key] = scoring.evaluation()
        return self.evaluations[key]


def stream_frames(location: str, rows: int) -> Iterator[Any]:
    """The data as pandas frames of at most `rows` rows: bounded memory whatever its size.
    `location` is a local path (absolute) or a URI: a file, a directory or a glob."""
    try:
        source = open_source(location, Path("/"))
        for batch in batches(source, rows):
            yield batch.to_pandas()
    except DataError as exc:
        raise GateError(exc.message, exc.hint) from None


def hook_path(ref: str, folder: Path) -> Path:
    """The file of hook `module:function`, inside the registry's folder, never elsewhere."""
    module, _, _ = ref.partition(":")
    parts = module.split(".")
    if not all(p.isidentifier() for p in parts):
        raise GateError(f"prepare '{ref}' is not module:function")
    path = (folder.joinpath(*parts)).with_suffix(".py").resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise GateError(
            f"prepare hook {module} not found as {path}",
            "hooks are Python files inside the folder of registry.yaml",
        )
    return path


def load_hook(ref: str, folder: Path) -> Hook:
    """`module:function` from a file inside the registry's folder, never from elsewhere."""
    module, _, function = ref.partition(":")
    path = hook_path(ref, folder)
    spec = importlib.util.spec_from_file_location(f"mlflow_gitops_hook_{module}", path)
    assert spec is not None
    assert spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    try:
        sys.path.insert(0, str(folder))
        spec.loader.exec_module(loaded)
    except Exception as exc:
        raise GateError(
            f"prepare hook {path.name} failed to import: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        sys.path.remove(str(folder))
    fn = getattr(loaded, function, None)
    if not callable(fn):
        raise GateError(f"{path.name} has no function {function}")
    return fn  # type: ignore[no-any-return]
