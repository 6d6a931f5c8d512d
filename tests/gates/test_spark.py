"""engine: spark on real registries and real models: the local engine's metrics and verdict, in
local mode, on a standalone master and worker, and through a Spark Connect server, each started on
loopback by the tests; the data on local disk and in an S3-compatible bucket (moto), read by the
tasks with pyarrow and the store's credentials, which no Spark UI, log, plan or tag shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mlflow_gitops.gates import spark as engine
from mlflow_gitops.gates.port import GateError, Side
from mlflow_gitops.registry.mlflow.evidence import MlflowEvidence
from mlflow_gitops.spec.model import EvaluateSpec, SparkSpec
from tests.cli_runner import run_cli
from tests.gates.harness import (
    EVALUATE,
    Trained,
    plan_with_gates,
    registered,
    spec,
)
from tests.integration.mlflow_helpers import client
from tests.s3server import MotoServer
from tests.servers import free_port, stop_group

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DATA = "data/green_tripdata_2021-03.parquet"
BUCKET = "holdout"
# the March data in the bucket: one object, hive partitions (a directory), and a glob of them
IN_BUCKET = (
    f"s3://{BUCKET}/green/green_tripdata_2021-03.parquet",
    f"s3://{BUCKET}/parts/",
    f"s3://{BUCKET}/parts/part=*/*.parquet",
)
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


@pytest.fixture(scope="module")
def bucket(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """An S3-compatible server holding the March data as one object and as hive partitions."""
    table = pq.read_table(trained.folder / DATA)
    parts = tmp_path_factory.mktemp("parts")
    with MotoServer(tmp_path_factory.mktemp("moto")) as moto:
        s3 = moto.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(trained.folder / DATA), BUCKET, IN_BUCKET[0].split("/", 3)[3])
        for part, start in enumerate(range(0, table.num_rows, 700)):
            pq.write_table(table.slice(start, 700), parts / f"{part}.parquet")
            s3.upload_file(
                str(parts / f"{part}.parquet"), BUCKET, f"parts/part={part}/data.parquet"
            )
        yield moto


@pytest.fixture
def aws(bucket: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The bucket reader's standard AWS environment in this process (the driver) only."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    env = bucket.env(bucket.reader)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def without_aws() -> dict[str, str]:
    """This process's environment with no AWS variable: what the tests' Spark servers get, so
    that the credentials can reach their tasks only inside the task."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def same_numbers(a: object, b: object) -> bool:
    """The same rows and the same metrics, to the bit (not approximately)."""
    return (a.rows, a.candidate, a.baseline) == (b.rows, b.candidate, b.baseline)  # type: ignore[attr-defined]


def ui_texts(port: int) -> str:
    """What the Spark UI serves of its applications: the environment (every Spark property,
    system property and classpath entry) and the SQL plans, as text."""
    base = f"http://127.0.0.1:{port}/api/v1/applications"
    texts = []
    with urllib.request.urlopen(base, timeout=30) as answer:
        apps = json.loads(answer.read())
    assert apps, "the Spark UI lists no application"
    for app in apps:
        for path in ("environment", "sql?details=true&planDescription=true", "stages?details=true"):
            with urllib.request.urlopen(f"{base}/{app['id']}/{path}", timeout=30) as answer:
                texts.append(answer.read().decode())
    assert "spark.master" in texts[0]  # the environment endpoint answered with the properties
    assert "MapInPandas" in texts[1]  # the evaluation's plan is among the SQL plans
    return "\n".join(texts)


def assert_no_secret(env: dict[str, str], *texts: str) -> None:
    for key in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
        for text in texts:
            assert env[key] not in text, f"{key} leaked"


def evaluate(
    trained: Trained,
    sides: tuple[Side, Side],
    data: str,
    evidence: MlflowEvidence | None = None,
    **extra: object,
) -> object:
    gate = EvaluateSpec.model_validate(
        {
            "data": data,
            "prepare": "features:prepare",
            "preprocessor": "preprocessor/preprocessor.b",
            "metrics": METRICS,
            **extra,
        }
    )
    evidence = evidence or MlflowEvidence(trained.uri)
    return evidence.evaluate(gate, trained.folder, *sides, None)


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


def test_local_mode_reads_the_bucket_with_the_local_engines_numbers_to_the_bit(
    trained: Trained, model: tuple[Side, Side], aws: dict[str, str], local_spark: None
) -> None:
    """s3:// with no Hadoop connector: the driver lists, the tasks read with pyarrow."""
    evidence = MlflowEvidence(trained.uri)  # the models load once
    local = evaluate(trained, model, IN_BUCKET[0], evidence=evidence)
    assert same_numbers(local, evaluate(trained, model, DATA, evidence=evidence))
    for data in IN_BUCKET:  # one object, a directory of hive partitions, a glob
        on_spark = evaluate(
            trained, model, data, evidence=evidence, engine="spark", spark={"master": "local[2]"}
        )
        assert same_numbers(on_spark, local), data
    missing = f"s3://{BUCKET}/nope/"
    with pytest.raises(GateError, match=f"cannot read the evaluation data {missing}: no such file"):
        evaluate(trained, model, missing, engine="spark", spark={"master": "local[2]"})


def test_the_credentials_reach_the_tasks_in_no_spark_ui_property_log_plan_or_tag(
    trained: Trained, aws: dict[str, str], local_spark: None, capfd: pytest.CaptureFixture[str]
) -> None:
    """A plan, a saved plan and its apply on the bucket's partitions, with Spark's web UI on:
    the secret is in none of the UI's properties and plans, Spark's and the tool's output, the
    saved plan or the tags."""
    name = "spark-s3-secrets"
    registered(trained, name, {1: "Production"})
    port = free_port()
    gate = EVALUATE.replace("data/green_tripdata_2021-03.parquet", IN_BUCKET[1]).replace(
        "- evaluate:\n",
        "- evaluate:\n    engine: spark\n    spark:\n      master: 'local[2]'\n"
        f"      conf: {{spark.ui.enabled: 'true', spark.ui.port: '{port}'}}\n",
    )
    path = spec(
        trained,
        name,
        f"versions:\n  - {{version: 2, stage: Production}}\ngates:\n  Production:"
        f"{textwrap.indent(gate, '    ')}",
    )
    saved = trained.folder / "spark-s3-plan.json"
    shown = run_cli(
        capfd, "plan", path, "--tracking-uri", trained.uri, "--format", "json", "--out", str(saved)
    )
    assert shown.code == 0, shown.out + shown.err
    [result] = json.loads(shown.out)["gates"]
    assert result["verdict"] == "pass"
    applied = run_cli(capfd, "apply", str(saved), "--tracking-uri", trained.uri)
    assert applied.code == 0, applied.out + applied.err
    version = client(trained.uri).get_model_version(name, "2")
    assert "mlflow_gitops.gate.Production" in version.tags
    ui = ui_texts(port)
    assert "spark.ui.port" in ui
    assert_no_secret(
        aws, ui, shown.out, shown.err, applied.out, applied.err, saved.read_text(),
        json.dumps(version.tags),
    )  # fmt: skip


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


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A Spark standalone master and one worker on 127.0.0.1 with no AWS variable, stopped
    after the module; (its URL, the folder of its logs and its executors' logs)."""
    engine.stop()  # one SparkContext per process: the local one goes first
    logs = tmp_path_factory.mktemp("standalone")
    env = {
        **without_aws(),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(logs),
        "SPARK_WORKER_DIR": str(logs / "work"),
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
            log = logs / f"{role}.log"
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
        yield url, logs
    finally:
        engine.stop()
        for proc in reversed(procs):
            stop_group(proc, grace=60)


def all_text(folder: Path) -> str:
    """Every file below a folder (logs, executors' stdout and stderr), as text."""
    return "\n".join(f.read_text(errors="replace") for f in folder.rglob("*") if f.is_file())


def test_standalone_cluster_gives_the_local_engines_metrics(
    trained: Trained,
    model: tuple[Side, Side],
    standalone: tuple[str, Path],
    aws: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From a local file and from the bucket: the executors (started without any AWS variable)
    read it with the credentials the task carries, and neither the driver's UI nor any log of
    the master, worker or executors shows them."""
    url, logs = standalone
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    ui_port = free_port()
    settings = {
        "master": url,
        "conf": {
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.executor.memory": "512m",
            "spark.cores.max": "1",
            # the UI on (an earlier local session in this JVM turned it off), on a free port
            "spark.ui.enabled": "true",
            "spark.ui.port": str(ui_port),
        },
    }
    evidence = MlflowEvidence(trained.uri)
    for data in (DATA, IN_BUCKET[1]):
        local = evaluate(trained, model, data, evidence)
        clustered = evaluate(trained, model, data, evidence, engine="spark", spark=settings)
        assert same_numbers(clustered, local), data
    ran = engine.session(
        EvaluateSpec.model_validate(
            {"data": DATA, "target": "x", "metrics": METRICS, "engine": "spark", "spark": settings}
        ).spark
    )
    assert ran.sparkContext.master == url
    executors = list((logs / "work").rglob("stderr"))
    assert executors, "no executor ran on the worker"
    assert_no_secret(aws, ui_texts(ui_port), all_text(logs))


@pytest.fixture(scope="module")
def connect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, int]]:
    """A Spark Connect server on 127.0.0.1 from pyspark's own distribution (its jars ship the
    server: nothing is downloaded), running local[2] with no AWS variable; stopped after the
    module. (its URL, the folder of its log, its web UI's port)"""
    import pyspark

    engine.stop()
    logs = tmp_path_factory.mktemp("connect")
    port, ui = free_port(), free_port()
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    env = {
        **without_aws(),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }
    args = [
        str(submit),
        *("--class", "org.apache.spark.sql.connect.service.SparkConnectServer"),
        *("--master", "local[2]", "--name", "mlflow-gitops tests"),
        *("--conf", "spark.connect.grpc.binding.address=127.0.0.1"),
        *("--conf", f"spark.connect.grpc.binding.port={port}"),
        *("--conf", "spark.driver.bindAddress=127.0.0.1", "--conf", "spark.driver.host=127.0.0.1"),
        *("--conf", f"spark.ui.port={ui}"),
        "spark-internal",
    ]
    log = logs / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_for(log, "Spark Connect server started", proc)
        yield f"sc://127.0.0.1:{port}", logs, ui
    finally:
        engine.stop()
        stop_group(proc, grace=60)


def test_spark_connect_gives_the_local_engines_metrics(
    trained: Trained,
    model: tuple[Side, Side],
    connect: tuple[str, Path, int],
    aws: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """spark: {remote: sc://...}: the server's tasks read the local file and the bucket (the
    credentials inside the task only), with the local engine's numbers to the bit."""
    remote, logs, ui = connect
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    evidence = MlflowEvidence(trained.uri)
    for data in (DATA, IN_BUCKET[2]):
        local = evaluate(trained, model, data, evidence)
        connected = evaluate(
            trained, model, data, evidence, engine="spark", spark={"remote": remote}
        )
        assert same_numbers(connected, local), data
    assert engine.placement(SparkSpec(remote=remote)) == ("remote", remote)
    # pyspark marks a process that made a remote session Connect-only (and its children with
    # it): a local master afterwards, in this process and in a child, still starts
    assert os.environ.get("SPARK_CONNECT_MODE_ENABLED") == "1"
    after = evaluate(trained, model, DATA, evidence, engine="spark", spark={"master": "local[1]"})
    assert same_numbers(after, evaluate(trained, model, DATA, evidence))
    assert_no_secret(aws, ui_texts(ui), all_text(logs))
