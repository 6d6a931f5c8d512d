"""Evidence from MLflow for the gates: run metrics, model size and signature, and a streamed
evaluation of candidate and baseline on held-out data. The only gate module that touches I/O."""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlflow_gitops.gates.data import DataError, batches, open_source
from mlflow_gitops.gates.data import identity as data_identity
from mlflow_gitops.gates.metrics import Accumulator, latency_summary
from mlflow_gitops.gates.port import Evaluation, GateError, Side
from mlflow_gitops.spec.model import TABLE_PREFIX, EvaluateSpec

STREAM_ROWS = 65_536
LATENCY_BATCHES = 20


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
        self.preprocessors: dict[tuple[str | None, str], tuple[Any, str]] = {}
        self.loads = 0  # how many models were loaded: 0 when every verdict came from the cache

    def run_metric(self, run_id: str | None, key: str) -> float | None:
        if not run_id:
            raise GateError("the version has no source run, so it has no run metrics")
        try:
            metrics = self.client.get_run(run_id).data.metrics
        except Exception as exc:
            raise GateError(f"cannot read run {run_id}: {str(exc)[:200]}") from None
        return metrics.get(key)

    def _download(self, side: Side) -> Path:
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
        folder = self._download(side)
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

    def _model(self, side: Side) -> Any:
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

    def _preprocessor(self, side: Side, artifact: str) -> tuple[Any, str]:
        """The unpickled preprocessor and the sha256 of its file."""
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
            self.preprocessors[key] = (loaded, hashlib.sha256(raw).hexdigest())
        return self.preprocessors[key]

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
        if spec.engine == "spark":
            from mlflow_gitops.gates import spark

            result = spark.evaluate(self, spec, folder, candidate, baseline, latency_rows)
        else:
            result = self._evaluate(spec, folder, candidate, baseline, latency_rows)
        self.evaluations[key] = result
        return result

    def _evaluate(
        self,
        spec: EvaluateSpec,
        folder: Path,
        candidate: Side,
        baseline: Side | None,
        latency_rows: int | None,
    ) -> Evaluation:
        sides = [("candidate", candidate)] + ([("baseline", baseline)] if baseline else [])
        prepare = _load_hook(spec.prepare, folder) if spec.prepare else None
        models = {name: self._model(side) for name, side in sides}
        pre: dict[str, tuple[Any, str]] = {
            name: self._preprocessor(side, spec.preprocessor) if spec.preprocessor else (None, "")
            for name, side in sides
        }
        acc = {name: Accumulator(set(spec.metrics)) for name, _ in sides}
        timings: dict[str, list[float]] = {name: [] for name, _ in sides}
        location = data_location(spec.data, folder)
        for frame in stream_frames(location, STREAM_ROWS):
            x, y = _split(frame, spec, prepare)
            if len(y) == 0:
                continue  # prepare dropped the whole batch (e.g. a partition it filters out)
            transformed: dict[str, Any] = {}  # one transform when both runs logged the same file
            for name, _ in sides:
                preprocessor, digest = pre[name]
                if digest not in transformed:
                    transformed[digest] = _transform(preprocessor, x)
                features = transformed[digest]
                wanted = LATENCY_BATCHES - len(timings[name]) if latency_rows else 0
                # the latency gate times the evaluation's own first predictions: nothing is
                # read or predicted twice
                predictions, timed = _predict_timed(
                    models[name], features, name, latency_rows or 0, wanted
                )
                timings[name].extend(timed)
                acc[name].add(y, predictions)
        if acc["candidate"].n == 0:
            raise GateError(f"the evaluation data {spec.data} has no rows left after preparation")
        return Evaluation(
            rows=acc["candidate"].n,
            candidate=acc["candidate"].result(),
            baseline=acc["baseline"].result() if baseline else None,
            latency_ms=latency_summary(timings),
        )


def stream_frames(location: str, rows: int) -> Iterator[Any]:
    """The data as pandas frames of at most `rows` rows: bounded memory whatever its size.
    `location` is a local path (absolute) or a URI: a file, a directory or a glob."""
    try:
        source = open_source(location, Path("/"))
        for batch in batches(source, rows):
            yield batch.to_pandas()
    except DataError as exc:
        raise GateError(exc.message, exc.hint) from None


def _load_hook(ref: str, folder: Path) -> Callable[[Any], tuple[Any, Any]]:
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


def _split(
    frame: Any, spec: EvaluateSpec, prepare: Callable[[Any], tuple[Any, Any]] | None
) -> tuple[Any, Any]:
    import numpy as np

    if prepare is not None:
        try:
            x, y = prepare(frame)
        except Exception as exc:
            raise GateError(
                f"prepare hook {spec.prepare} failed: {type(exc).__name__}: {exc}"
            ) from None
        return x, np.asarray(y, dtype=float)
    assert spec.target is not None
    if spec.target not in frame.columns:
        raise GateError(
            f"the evaluation data has no column {spec.target!r}", "set target: or prepare:"
        )
    return frame.drop(columns=[spec.target]), frame[spec.target].to_numpy(dtype=float)


def _transform(preprocessor: Any, x: Any) -> Any:
    if preprocessor is None:
        return x
    try:
        if hasattr(preprocessor, "vocabulary_") and hasattr(x, "to_dict"):
            return preprocessor.transform(x.to_dict(orient="records"))  # a DictVectorizer
        return preprocessor.transform(x)  # transform only: never fit on evaluation data
    except Exception as exc:
        raise GateError(
            f"the preprocessor failed to transform the data: {type(exc).__name__}: {exc}"
        ) from None


def _predict(model: Any, features: Any, side: str) -> Any:
    import numpy as np

    try:
        return np.asarray(model.predict(features), dtype=float).reshape(-1)
    except Exception as exc:
        raise GateError(
            f"the {side} model failed to predict: {type(exc).__name__}: {str(exc)[:300]}"
        ) from None


def _predict_timed(
    model: Any, features: Any, side: str, rows: int, most: int
) -> tuple[Any, list[float]]:
    """Predictions for every row and the milliseconds of up to `most` predict calls on
    `rows`-row slices (the first full slices of these features; the rest in one call)."""
    import numpy as np

    total = features.shape[0]
    if rows <= 0 or most <= 0 or total == 0:
        return _predict(model, features, side), []
    if total < rows:  # fewer rows than a latency batch: this one call is the measurement
        t0 = time.perf_counter()
        predictions = _predict(model, features, side)
        return predictions, [(time.perf_counter() - t0) * 1000]
    timed = min(most, total // rows)
    parts, out = [], []
    for start in range(0, timed * rows, rows):
        t0 = time.perf_counter()
        parts.append(_predict(model, features[start : start + rows], side))
        out.append((time.perf_counter() - t0) * 1000)
    if timed * rows < total:
        parts.append(_predict(model, features[timed * rows :], side))
    return np.concatenate(parts), out
