"""The evaluation the gates run over models a backend loads: data digests, candidate and baseline
loaded and streamed over held-out data (or scored by Spark). A registry backend supplies the
models, their files and their runs' metrics (MLflow: registry/mlflow/evidence.py); this module
never talks to a registry."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlflow_gitops.gates.data import (
    STREAM_ROWS,
    DataError,
    DataSource,
    batches,
    data_location,
    open_source,
)
from mlflow_gitops.gates.data import identity as data_identity
from mlflow_gitops.gates.port import Evaluation, GateError, Side
from mlflow_gitops.gates.predict import Hook, Loaded, Scoring, named
from mlflow_gitops.spec.model import EvaluateSpec


class ModelEvidence(ABC):
    """The gates' Evidence (gates/port.py) over a backend that loads models: the backend
    implements the abstract methods, each raising GateError when it cannot; evaluations are
    computed once per process for the same inputs."""

    def __init__(self) -> None:
        self.evaluations: dict[tuple[str, ...], Evaluation] = {}
        self.sources: dict[tuple[str, Path], DataSource] = {}

    @abstractmethod
    def run_metric(self, side: Side, key: str) -> float | None: ...

    def model_size_mb(self, side: Side) -> float:
        folder = self.download(side)
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20

    @abstractmethod
    def has_signature(self, side: Side) -> bool: ...

    @abstractmethod
    def download(self, side: Side, path: str = "", doing: str = "download") -> Path:
        """The model's folder (or one file of it) on local disk."""

    @abstractmethod
    def load_model(self, side: Side) -> Any:
        """The side's model, ready to predict."""

    @abstractmethod
    def load_preprocessor(self, side: Side, artifact: str) -> tuple[Any, bytes]:
        """The unpickled preprocessor of the side's run and its file's bytes."""

    def data_digest(self, data: str, folder: Path) -> str:
        """The identity of the data as its store reports it: sha256 of local files, ETag or
        generation, size and mtime of objects (no object data is read); for table:<name> or a
        URI only Hadoop reads (engine: spark), its files as Spark lists them."""
        from mlflow_gitops.gates import spark  # imports no pyspark until a session is made

        if spark.spark_reads(data):  # engine: spark only (validated for table:)
            return spark.spark_digest(data)
        try:
            return data_identity(self.source(data, folder))
        except DataError as exc:
            raise GateError(exc.message, exc.hint) from None

    def hook_digest(self, ref: str, folder: Path) -> str:
        """The sha256 of the prepare hook's file: an edited hook scores every version again."""
        return hashlib.sha256(hook_path(ref, folder).read_bytes()).hexdigest()

    def source(self, data: str, folder: Path) -> DataSource:
        """The files of `data:`, listed once per plan: the Spark engine's tasks read the very
        files whose identities the cache key holds."""
        key = (data, folder)
        if key not in self.sources:
            try:
                self.sources[key] = open_source(data, folder)
            except DataError as exc:
                raise GateError(exc.message, exc.hint) from None
        return self.sources[key]

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
