"""Evidence from MLflow for the gates: run metrics, model size and signature, and a streamed
evaluation of candidate and baseline on held-out data. The only gate module that touches I/O."""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlflow_gitops.gates.data import DataError, batches, open_source
from mlflow_gitops.gates.data import identity as data_identity
from mlflow_gitops.gates.port import Evaluation, GateError, Side
from mlflow_gitops.gates.predict import Hook, Loaded, Scoring, named
from mlflow_gitops.spec.model import TABLE_PREFIX, EvaluateSpec

STREAM_ROWS = 65_536


def data_location(data: str, folder: Path) -> str:
    """A path relative to registry.yaml's folder, or a URI as written."""
    if "://" in data:
        return data
    return str((folder / data).resolve())


class MlflowEvidence:
    """Evidence through MLflow; each model is loaded at most once per process."""

    def __init__(self, uri: str) -> None:
        import mlflow
        from mlflow import MlflowClient

        # models:/ URIs resolve through the global registry URI: make it this registry's
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self.evaluations: dict[tuple[str, ...], Evaluation] = {}
        self.models: dict[str, Any] = {}
        self.preprocessors: dict[tuple[str | None, str], tuple[Any, bytes]] = {}
        self.loads = 0  # how many models were loaded: 0 when every verdict came from the cache

    def run_metric(self, run_id: str | None, key: str) -> float | None:
        if not run_id:
            raise GateError("the version has no source run, so it has no run metrics")
        try:
            metrics = self.client.get_run(run_id).data.metrics
        except Exception as exc:
            raise GateError(f"cannot read run {run_id}: {str(exc)[:200]}") from None
        return metrics.get(key)

    def download(self, side: Side) -> Path:
        """The model's artifact folder, downloaded through the registry."""
        import mlflow

        try:
            return Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=side.uri, dst_path=tempfile.mkdtemp()
                )
            )
        except Exception as exc:
            raise GateError(f"cannot download the model {side.uri}: {str(exc)[:300]}") from None

    def model_size_mb(self, side: Side) -> float:
        folder = self.download(side)
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20

    def has_signature(self, side: Side) -> bool:
        from mlflow.models import get_model_info

        try:
            return get_model_info(side.uri).signature is not None
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

    def load_model(self, side: Side) -> Any:
        """The side's pyfunc model, through the configured registry only."""
        if side.uri not in self.models:
            import mlflow.pyfunc

            try:
                self.models[side.uri] = mlflow.pyfunc.load_model(side.uri)
            except Exception as exc:
                raise GateError(
                    f"cannot load the model {side.uri}: {type(exc).__name__}: {str(exc)[:300]}",
                    "check that its artifacts exist and that its library versions match this environment",
                ) from None
            self.loads += 1
        return self.models[side.uri]

    def load_preprocessor(self, side: Side, artifact: str) -> tuple[Any, bytes]:
        """The unpickled preprocessor and its file's bytes, from the side's run only."""
        key = (side.run_id, artifact)
        if key not in self.preprocessors:
            if not side.run_id:
                raise GateError(f"the model {side.uri} has no source run to take {artifact} from")
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    local = self.client.download_artifacts(side.run_id, artifact, tmp)
                except Exception:
                    raise GateError(
                        f"run {side.run_id} has no artifact {artifact}",
                        "log the fitted preprocessor with the run, or remove preprocessor: "
                        "from the gate",
                    ) from None
                raw = Path(local).read_bytes()
            try:
                loaded = pickle.loads(raw)  # a run of the configured registry only
            except Exception as exc:
                raise GateError(f"cannot unpickle {artifact} of run {side.run_id}: {exc}") from None
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
            candidate.uri,
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


def load_hook(ref: str, folder: Path) -> Hook:
    """`module:function` from a file inside the registry's folder, never from elsewhere."""
    module, _, function = ref.partition(":")
    parts = module.split(".")
    if not all(p.isidentifier() for p in parts):
        raise GateError(f"prepare '{ref}' is not module:function")
    path = (folder.joinpath(*parts)).with_suffix(".py").resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise GateError(
            f"prepare hook {module} not found as {path}",
            "hooks are Python files inside the folder of registry.yaml",
        )
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
