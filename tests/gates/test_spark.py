"""engine: spark on real registries and real models: the local engine's metrics and verdict, in
local mode and on a standalone master and worker started on loopback by the test."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mlflow_gitops.gates import spark as engine
from mlflow_gitops.gates.port import Side
from mlflow_gitops.registry.mlflow.evidence import MlflowEvidence
from mlflow_gitops.spec.model import EvaluateSpec, SparkSpec
from tests.gates.harness import (
    EVALUATE,
    Trained,
    plan_with_gates,
    registered,
    spec,
)
from tests.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DATA = "data/green_tripdata_2021-03.parquet"
LOCAL2 = SparkSpec(master="local[2]")
METRICS = {
    "rmse": {"min_absolute_change": 0.0},
    "mae": {"threshold": 100.0},
    "r2": {"threshold": 0.0},
    "mape": {"threshold": 10.0},
}


@pytest.fixture(scope="module")
def model(trained: Trained) -> tuple[Side, Side]:
    """v2 (gradient boosting) is the candidate, v1 (linear) the baseline."""
    registered(trained, "spark-eval", {1: "Production"})
    return (
        Side("models:/spark-eval/2", trained.runs[1]),
        Side("models:/spark-eval/1", trained.runs[0]),
    )


@pytest.fixture(scope="module")
def local_spark() -> Iterator[None]:
    yield
    engine.stop()


def evaluate(trained: Trained, sides: tuple[Side, Side], data: str, **extra: object) -> object:
    gate = EvaluateSpec.model_validate(
        {
            "data": data,
            "prepare": "features:prepare",
            "preprocessor": "preprocessor/preprocessor.b",
            "metrics": METRICS,
            **extra,
        }
    )
    return MlflowEvidence(trained.uri).evaluate(gate, trained.folder, *sides, None)


def test_local_mode_gives_the_local_engines_metrics_on_a_file_and_a_partitioned_directory(
    trained: Trained, model: tuple[Side, Side], local_spark: None
) -> None:
    local = evaluate(trained, model, DATA)
    on_spark = evaluate(trained, model, DATA, engine="spark", spark={"master": "local[2]"})
    assert on_spark.rows == local.rows > 2000  # type: ignore[attr-defined]
    for side in ("candidate", "baseline"):
        for name, value in getattr(local, side).items():
            assert getattr(on_spark, side)[name] == pytest.approx(value, rel=1e-9), (side, name)

    # the same rows as a hive-partitioned directory, read by Spark (partition column included)
    table = pq.read_table(trained.folder / DATA)
    for part, start in enumerate(range(0, table.num_rows, 700)):
        folder = trained.folder / "partitioned" / f"part={part}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(start, 700), folder / "data.parquet")
    split = evaluate(trained, model, "partitioned/", engine="spark", spark={"master": "local[2]"})
    assert split.rows == local.rows  # type: ignore[attr-defined]
    assert split.candidate["rmse"] == pytest.approx(local.candidate["rmse"], rel=1e-9)  # type: ignore[attr-defined]
    # and the local engine on the same directory: the same bits, whatever the split
    both = evaluate(trained, model, "partitioned/")
    assert (both.candidate, both.baseline) == (split.candidate, split.baseline)  # type: ignore[attr-defined]


def test_local_mode_gives_the_same_verdict_and_failures_are_verdicts(
    trained: Trained, local_spark: None
) -> None:
    on_spark = EVALUATE.replace(
        "- evaluate:\n", "- evaluate:\n    engine: spark\n    spark: {master: 'local[2]'}\n"
    )
    verdicts = {}
    for name, holder, candidate in (("spark-better", 1, 2), ("spark-worse", 2, 1)):
        registered(trained, name, {holder: "Production"})
        for label, gate in (("local", EVALUATE), ("spark", on_spark)):
            path = spec(
                trained,
                name,
                f"versions:\n  - {{version: {candidate}, stage: Production}}\n"
                "gates:\n  Production:\n    - latency: {batch_rows: 200, p95_ms: 60000}"
                f"{textwrap.indent(gate, '    ')}",
            )
            plan, _ = plan_with_gates(trained, path)
            gates = {g.gate: g for g in plan.gates}  # type: ignore[attr-defined]
            verdicts[name, label] = (
                gates["evaluate"].verdict,
                [(c.name, c.verdict, c.candidate, c.baseline) for c in gates["evaluate"].checks],
            )
            assert gates["latency"].checks[1].candidate is not None  # timed on the driver
    assert verdicts["spark-better", "local"][0] == "pass"
    assert verdicts["spark-worse", "local"][0] == "fail"
    for name in ("spark-better", "spark-worse"):
        local, spark = verdicts[name, "local"], verdicts[name, "spark"]
        assert spark[0] == local[0]
        for (n, v, c, b), (n2, v2, c2, b2) in zip(local[1], spark[1], strict=True):
            assert (n2, v2) == (n, v)
            assert c2 == (c if c is None else pytest.approx(c, rel=1e-9))
            assert b2 == (b if b is None else pytest.approx(b, rel=1e-9))

    name = "spark-broken"
    registered(trained, name, {})
    broken = spec(
        trained,
        name,
        "versions:\n  - {version: 2, stage: Staging}\ngates:\n  Staging:\n"
        f"    - evaluate:\n        engine: spark\n        spark: {{master: 'local[2]'}}\n"
        f"        data: {DATA}\n"
        "        prepare: features:broken\n"
        "        metrics: {rmse: {threshold: 100}}\n",
    )
    plan, _ = plan_with_gates(trained, broken)
    [result] = plan.gates  # type: ignore[attr-defined]
    assert result.verdict == "fail"
    assert "no such column: fare" in result.message  # raised in a Spark task, told as a verdict


def test_a_table_name_is_read_by_spark_and_its_files_are_its_identity(
    trained: Trained, model: tuple[Side, Side], local_spark: None
) -> None:
    spark = engine.session(LOCAL2)  # one JVM for every local-mode test
    spark.read.parquet(str(trained.folder / DATA)).createOrReplaceTempView("holdout_march")
    local = evaluate(trained, model, DATA)
    from_table = evaluate(
        trained, model, "table:holdout_march", engine="spark", spark={"master": "local[2]"}
    )
    assert from_table.rows == local.rows  # type: ignore[attr-defined]
    assert from_table.candidate == local.candidate  # type: ignore[attr-defined]
    evidence = MlflowEvidence(trained.uri)
    first = evidence.data_digest("table:holdout_march", trained.folder)
    assert first == evidence.data_digest("table:holdout_march", trained.folder)
    spark.read.parquet(str(trained.folder / "partitioned")).createOrReplaceTempView("holdout_march")
    assert evidence.data_digest("table:holdout_march", trained.folder) != first


def _spark_class() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-class")


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(240):
        if text in log.read_text(errors="replace"):
            return
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not seen in {log}")


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[str]:
    """A Spark standalone master and one worker on 127.0.0.1, stopped after the test."""
    engine.stop()  # one SparkContext per process: the local one goes first
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(tmp_path),
        "SPARK_WORKER_DIR": str(tmp_path / "work"),
        "PYSPARK_PYTHON": sys.executable,
    }
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for role, args in (
            (
                "master",
                [
                    "org.apache.spark.deploy.master.Master",
                    *("--host", "127.0.0.1", "--port", str(port)),
                    *("--webui-port", str(free_port())),
                ],
            ),
            (
                "worker",
                [
                    "org.apache.spark.deploy.worker.Worker",
                    *(url, "--host", "127.0.0.1", "--cores", "1", "--memory", "1g"),
                    *("--webui-port", str(free_port())),
                ],
            ),
        ):
            log = tmp_path / f"{role}.log"
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        [_spark_class(), *args],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            _wait_for(
                log,
                "I have been elected leader" if role == "master" else "Successfully registered",
                procs[-1],
            )
        yield url
    finally:
        engine.stop()
        for proc in reversed(procs):
            os.killpg(proc.pid, 15)
            proc.wait(timeout=60)


def test_standalone_cluster_gives_the_local_engines_metrics(
    trained: Trained,
    model: tuple[Side, Side],
    standalone: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    local = evaluate(trained, model, DATA)
    settings = {
        "master": standalone,
        "conf": {
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.executor.memory": "512m",
            "spark.cores.max": "1",
        },
    }
    clustered = evaluate(trained, model, DATA, engine="spark", spark=settings)
    assert clustered.rows == local.rows  # type: ignore[attr-defined]
    for name, value in local.candidate.items():  # type: ignore[attr-defined]
        assert clustered.candidate[name] == pytest.approx(value, rel=1e-9), name  # type: ignore[attr-defined]
    ran = engine.session(
        EvaluateSpec.model_validate(
            {"data": DATA, "target": "x", "metrics": METRICS, "engine": "spark", "spark": settings}
        ).spark
    )
    assert ran.sparkContext.master == standalone
