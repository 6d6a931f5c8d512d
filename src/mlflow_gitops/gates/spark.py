"""`engine: spark`: the evaluate gate's per-batch evaluation run in Spark tasks, merged exactly.

The driver lists the data once (gates/data.py: the files whose identities the cache key holds)
and each task reads its own files with pyarrow's filesystems, from every store the local engine
reads (no Hadoop connector); the store's standard credentials travel inside the task's closure,
never in a Spark setting, log or plan. A `table:<name>` or a URI only Hadoop reads (s3a://,
wasbs://, ...) is read by Spark itself. Every task runs the local engine's batch step
(`predict.Scoring`: the `prepare` hook, each run's preprocessor with `transform` only, both
models' `predict`) and returns its partial sums as JSON; the driver merges them exactly
(`metrics.Accumulator`), so the metrics are the local engine's. Models and preprocessors are
loaded on the driver through the configured registry only (the local engine's trust rule) and
reach the tasks as those same bytes: the model's artifact folder as a tar archive, the
preprocessor as the run's artifact.
Latency is timed on the driver, on the first rows of the data, with the models the driver
loaded: the same measurement the local engine makes, and never one skewed by tasks sharing an
executor. pyspark is imported only here, and only when a gate runs on Spark.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlflow_gitops.gates import data as store
from mlflow_gitops.gates.data import STREAM_ROWS, data_location
from mlflow_gitops.gates.port import GateError, Side
from mlflow_gitops.gates.predict import LATENCY_BATCHES, Loaded, Scoring
from mlflow_gitops.spec.model import TABLE_PREFIX, EvaluateSpec, SparkSpec


class Models(Protocol):
    """What the engine takes from the gate evidence (gates/evidence.ModelEvidence): the listing
    the cache key identified, and each side's model folder and preprocessor bytes to ship."""

    def source(self, data: str, folder: Path) -> store.DataSource: ...

    def download(self, side: Side, path: str = "", doing: str = "download") -> Path: ...

    def load_preprocessor(self, side: Side, artifact: str) -> tuple[Any, bytes]: ...


DEFAULT_MASTER = "local[*]"
# schemes only Hadoop's filesystems read: Spark reads these itself (with the cluster's connectors)
HADOOP_SCHEMES = (
    "s3a", "s3n", "wasb", "wasbs", "adl", "dbfs", "viewfs", "har", "oss", "cosn", "ofs",
)  # fmt: skip
TASKS_PER_SLOT = 4  # at most this many tasks per core of the session when files are many
_SESSION: dict[str, Any] = {}  # this process's session and the settings it was made with


@dataclass(frozen=True)
class Shipped:
    """What a task needs of one side: the model folder (tar) and the preprocessor's bytes."""

    name: str
    model_tar: bytes
    preprocessor: bytes | None


@dataclass(frozen=True)
class Task:
    """Everything a task receives: plain bytes and the validated spec; no live objects."""

    spec: EvaluateSpec
    prepare: Any  # the hook the driver resolved inside the registry's folder, or None
    sides: tuple[Shipped, ...]


@dataclass(frozen=True)
class Files:
    """The data as the driver listed it, for tasks that read it themselves: the store (scheme
    and location: each task builds the filesystem again from them and `environment`, the
    store's standard variables, secrets included, which travel only inside the task), every
    file with its partition values, and the units (file, share of its row groups) by task id."""

    data: str
    scheme: str
    where: str
    csv: bool
    fields: tuple[Any, ...]  # the hive partition columns (pyarrow fields)
    parts: tuple[store.Part, ...]
    shares: int  # tasks per parquet file (each reads every shares-th row group)
    environment: dict[str, str] = field(repr=False)  # secrets: never in a repr or message

    @property
    def units(self) -> list[tuple[int, int]]:
        return [(i, j) for i in range(len(self.parts)) for j in range(self.shares)]


def placement(settings: SparkSpec | None) -> tuple[str, str]:
    """("remote", "sc://...") or ("master", url): the file's setting, then SPARK_REMOTE,
    then local[*] on this machine."""
    if settings is not None and settings.remote:
        return "remote", settings.remote
    if settings is not None and settings.master:
        return "master", settings.master
    if os.environ.get("SPARK_REMOTE"):
        return "remote", os.environ["SPARK_REMOTE"]
    return "master", DEFAULT_MASTER


def session(settings: SparkSpec | None) -> Any:
    """The Spark session for these settings; one per process, replaced when they change."""
    kind, where = placement(settings)
    conf = dict(settings.conf) if settings is not None else {}
    key = json.dumps([kind, where, sorted(conf.items())])
    if _SESSION.get("key") == key:
        return _SESSION["session"]
    stop()
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise GateError(
            "engine: spark needs pyspark, which is not installed",
            "pip install 'mlflow-gitops[spark]'",
        ) from None
    builder = SparkSession.builder.appName("mlflow-gitops gate")
    conf.setdefault("spark.sql.session.timeZone", "UTC")
    conf.setdefault("spark.sql.execution.arrow.maxRecordsPerBatch", str(STREAM_ROWS))
    if kind == "master" and where.startswith("local"):
        # tasks on this machine run this interpreter (and its packages), not whatever python3 is;
        # pyspark reads the workers' interpreter from PYSPARK_PYTHON when the context starts
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # on this machine nothing listens beyond loopback, and there is no web UI to serve
        conf.setdefault("spark.driver.bindAddress", "127.0.0.1")
        conf.setdefault("spark.driver.host", "127.0.0.1")
        conf.setdefault("spark.ui.enabled", "false")
    if kind == "master":  # a Connect server owns its static settings and refuses them
        conf.setdefault("spark.ui.showConsoleProgress", "false")  # the plan's output stays clean
    for k, v in conf.items():
        builder = builder.config(k, v)
    saved = os.environ.pop("SPARK_REMOTE", None) if kind == "master" else None
    if kind == "master":
        # pyspark marks the whole process as Connect-only once a remote session was made
        # (SPARK_CONNECT_MODE_ENABLED, inherited by child processes too): a local master after a
        # remote one would ask for a remote URL
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    try:
        made = builder.remote(where) if kind == "remote" else builder.master(where)
        spark = made.getOrCreate()
    except Exception as exc:
        raise GateError(
            f"cannot start Spark ({kind} {where}): {type(exc).__name__}: {str(exc)[:300]}",
            "check spark: in the gate (master: or remote:), SPARK_REMOTE, and JAVA_HOME",
        ) from None
    finally:
        if saved is not None:
            os.environ["SPARK_REMOTE"] = saved
    _SESSION.update(key=key, session=spark)
    return spark


def stop() -> None:
    """Stop this process's Spark session, if any."""
    spark = _SESSION.pop("session", None)
    _SESSION.pop("key", None)
    if spark is not None:
        released(spark)
        spark.stop()


RELEASE_WAIT_S = 30.0


def released(spark: Any) -> None:
    """On Spark Connect, wait (at most RELEASE_WAIT_S) until the server has released this
    session's finished executions. pyspark releases them from a background thread; a session
    closed before that (a later session, the process's exit) makes the server log each execution
    it still holds, whole plan included, and the plan carries the tasks' store credentials.
    A classic session has nothing to wait for."""
    if not type(spark).__module__.startswith("pyspark.sql.connect"):
        return  # a classic session (whose `client` property raises)
    futures = getattr(spark.client, "_release_futures", None)
    if futures:
        concurrent.futures.wait(list(futures), timeout=RELEASE_WAIT_S)


def spark_reads(data: str) -> bool:
    """Spark itself reads `table:<name>` and URIs only Hadoop's filesystems read (s3a://, ...);
    tasks read everything the local engine reads (gates/data.py) with pyarrow."""
    scheme = data.split(":", 1)[0].lower() if ":" in data else ""
    return data.startswith(TABLE_PREFIX) or scheme in HADOOP_SCHEMES


def read(spark: Any, data: str, folder: Path) -> Any:
    """A Spark DataFrame of `data`: `table:<name>`, or a parquet/csv file, directory or glob."""
    try:
        if data.startswith(TABLE_PREFIX):
            return spark.table(data[len(TABLE_PREFIX) :])
        location = data_location(data, folder)
        if location.lower().endswith((".csv", ".csv.gz")):
            return spark.read.csv(location, header=True, inferSchema=True)
        return spark.read.parquet(location)
    except Exception as exc:
        raise GateError(
            f"Spark cannot read the evaluation data {data}: {_first_line(exc)}",
            "data: is a path relative to registry.yaml's folder, a URI the cluster can read, "
            "a glob, or table:<name>",
        ) from None


def spark_digest(data: str) -> str:
    """The identity of data Spark reads itself, without reading it: its name and its files as
    the catalog (or Hadoop's listing) reports them (Spark writers name every new file uniquely,
    so a rewrite changes the list)."""
    spark = _SESSION.get("session") or session(None)
    frame = read(spark, data, Path.cwd())
    try:
        files = sorted(frame.inputFiles())
    except Exception as exc:
        raise GateError(f"cannot list the files of {data}: {_first_line(exc)}") from None
    return hashlib.sha256(json.dumps([data, files]).encode()).hexdigest()


def score(evidence: Models, scoring: Scoring, folder: Path, sides: list[tuple[str, Side]]) -> None:
    """The evaluate gate's sums from Spark tasks, merged exactly into `scoring` (so the metrics
    are the local engine's); latency timed on the driver."""
    spec = scoring.spec
    shipped = tuple(_ship(evidence, spec, name, side) for name, side in sides)
    spark = session(spec.spark)
    task = Task(spec=spec, prepare=scoring.prepare, sides=shipped)
    files: Files | None = None
    if spark_reads(spec.data):
        frame = read(spark, spec.data, folder)
    else:
        source = evidence.source(spec.data, folder)  # the listing the cache key identified
        files = _files(spark, source, folder)
        units = len(files.units)
        frame = spark.range(units, numPartitions=min(units, TASKS_PER_SLOT * _slots(spark)))

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        return evaluate_partition(task, batches if files is None else read_units(files, batches))

    try:
        rows = frame.mapInPandas(run, schema="state string").collect()
    except Exception as exc:
        raise GateError(f"the Spark evaluation failed: {_first_line(exc)}") from None
    finally:
        released(spark)
    for row in rows:
        state = json.loads(row["state"])
        if "error" in state:
            raise GateError(state["error"], state.get("hint", ""))
        scoring.merge(state["sides"])
    if scoring.latency_rows:
        # the driver's models on the data's first rows: never skewed by tasks sharing an executor
        wanted = LATENCY_BATCHES * scoring.latency_rows
        if files is None:
            scoring.time(frame.limit(wanted).toPandas())
        else:
            scoring.time(_first_rows(evidence.source(spec.data, folder), wanted))


def _files(spark: Any, source: store.DataSource, folder: Path) -> Files:
    try:
        fields, parts = store.layout(source)
    except store.store_errors() as exc:
        error = store.explain(source.data, exc)
        raise GateError(error.message, error.hint) from None
    scheme, where = store.location(source.data, folder)
    # a few parquet files on many cores: each file's row groups are shared among tasks
    shares = 1 if source.csv else max(1, _slots(spark) // len(parts))
    environment = store.store_environment(scheme)
    return Files(source.data, scheme, where, source.csv, fields, parts, shares, environment)


def _slots(spark: Any) -> int:
    """The session's cores (classic: its default parallelism; Connect: the server's setting,
    else one task per file)."""
    try:
        return int(spark.sparkContext.defaultParallelism)
    except Exception:  # Spark Connect has no SparkContext
        value = spark.conf.get("spark.default.parallelism", None)
        return int(value) if value else 1


def _first_rows(source: store.DataSource, rows: int) -> Any:
    """The data's first `rows` rows, read on the driver (for the latency gate)."""
    import pyarrow as pa

    taken, seen = [], 0
    try:
        for batch in store.batches(source, min(rows, STREAM_ROWS)):
            taken.append(batch)
            seen += batch.num_rows
            if seen >= rows:
                break
    except store.DataError as exc:
        raise GateError(exc.message, exc.hint) from None
    return pa.Table.from_batches(taken).slice(0, rows).to_pandas()


def _ship(evidence: Models, spec: EvaluateSpec, name: str, side: Side) -> Shipped:
    """The side's model folder, downloaded through the registry, and its preprocessor's bytes
    (the ones the driver unpickled)."""
    folder = evidence.download(side)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(folder, arcname="model")
    raw = evidence.load_preprocessor(side, spec.preprocessor)[1] if spec.preprocessor else None
    return Shipped(name=name, model_tar=archive.getvalue(), preprocessor=raw)


# --- in the Spark task -----------------------------------------------------------------------

_LOADED: dict[str, Any] = {}  # per Python worker: model and preprocessor by sha256 of bytes


def evaluate_partition(task: Task, frames: Iterator[Any]) -> Iterator[Any]:
    """One task: the local engine's batch step over its frames; one row of partial sums."""
    import pandas as pd

    try:
        state: dict[str, Any] = {"sides": _partition_sums(task, frames)}
    except GateError as exc:
        state = {"error": exc.message, "hint": exc.hint}
    yield pd.DataFrame({"state": [json.dumps(state)]})


def _partition_sums(task: Task, frames: Iterator[Any]) -> dict[str, Any]:
    sides = tuple(
        Loaded(s.name, _task_model(s.model_tar), *_task_preprocessor(s.preprocessor))
        for s in task.sides
    )
    scoring = Scoring(task.spec, task.prepare, sides)
    for frame in frames:
        scoring.add(frame)
    return scoring.partial()


def read_units(files: Files, ids: Iterator[Any]) -> Iterator[Any]:
    """The frames of this task's units (the ids Spark gave it), read from the store with
    pyarrow, in batches of the local engine's size."""
    units = files.units
    try:
        with _environment(files.environment):
            fs, _ = store.filesystem(files.scheme, files.where)
            for frame in ids:
                for unit in frame["id"].tolist():
                    part, share = units[unit]
                    for batch in store.part_batches(
                        fs, files.csv, files.parts[part], files.fields, STREAM_ROWS,
                        (share, files.shares),
                    ):  # fmt: skip
                        yield batch.to_pandas()
    except store.DataError as exc:
        raise GateError(exc.message, exc.hint) from None
    except store.store_errors() as exc:
        error = store.explain(files.data, exc)
        raise GateError(error.message, error.hint) from None


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """The driver's store variables in this Python worker while its task reads (the AWS SDK
    reads them at each request), then as they were: a reused worker keeps none of them."""
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _task_model(archive: bytes) -> Any:
    key = "model:" + hashlib.sha256(archive).hexdigest()
    if key not in _LOADED:
        import mlflow.pyfunc

        target = tempfile.mkdtemp(prefix="mlflow-gitops-model-")
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
        try:
            _LOADED[key] = mlflow.pyfunc.load_model(str(Path(target) / "model"))
        except Exception as exc:
            raise GateError(
                f"a Spark task cannot load the model: {type(exc).__name__}: {str(exc)[:300]}",
                "the executors need the model's libraries (mlflow, its flavor) installed",
            ) from None
    return _LOADED[key]


def _task_preprocessor(raw: bytes | None) -> tuple[Any, str]:
    if raw is None:
        return None, ""
    import pickle

    digest = hashlib.sha256(raw).hexdigest()
    key = "preprocessor:" + digest
    if key not in _LOADED:
        _LOADED[key] = pickle.loads(raw)  # the bytes the driver downloaded from the registry
    return _LOADED[key], digest


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if "GateError" in line or "Error:" in line:
            return line.strip()[:300]
    return (text.splitlines() or [type(exc).__name__])[0][:300]
