"""engine: spark in the file: validated offline, without importing pyspark; where it runs; what
a task reads (its units of the driver's listing) and which variables it carries, without Spark."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlflow_gitops.gates.data import store_environment
from mlflow_gitops.gates.port import GateError
from mlflow_gitops.gates.spark import DEFAULT_MASTER, Files, placement, read_units, spark_reads
from mlflow_gitops.spec.model import SparkSpec
from tests.cli_runner import run_cli
from tests.helpers import write_spec

SPARK_GATE = """\
version: 1
models:
  m:
    versions:
      - {version: 2, stage: Production}
    gates:
      Production:
        - evaluate:
            engine: spark
            spark: {master: "local[2]"}
            data: holdout/
            target: duration
            metrics: {rmse: {threshold: 7}}
"""


def test_validate_schema_and_help_never_import_pyspark(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, SPARK_GATE)
    probe = (
        "import sys\n"
        "from mlflow_gitops.cli import main\n"
        f"for argv in ({['validate', str(spec)]!r}, ['schema'], ['--help'], ['plan', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j'))\n"
        "print('PYSPARK:', loaded, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert "PYSPARK: []" in proc.stderr, proc.stderr[-2000:]
    assert "valid (1 models" in proc.stdout, proc.stdout + proc.stderr


def test_engine_spark_without_pyspark_is_a_located_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec(tmp_path, SPARK_GATE)
    monkeypatch.setitem(sys.modules, "pyspark", None)  # find_spec now reports it missing
    result = run_cli(capsys, "validate", str(spec))
    assert result.code == 1
    assert (
        f"{spec}:9:13: models.m.gates.Production.checks[0].evaluate.engine: engine: spark "
        "needs pyspark, which is not installed" in result.err
    )
    assert "hint: pip install 'mlflow-gitops[spark]'" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("engine: spark", "engine: local"), "spark: applies to engine: spark only"),
        (('{master: "local[2]"}', '{master: x, remote: "sc://h:15002"}'), "not both"),
        (('{master: "local[2]"}', '{remote: "h:15002"}'), "should match pattern '^sc://'"),
        (("rmse:", "rsme:"), "unknown metric 'rsme': use one of accuracy"),
        (
            (
                'engine: spark\n            spark: {master: "local[2]"}\n            data: holdout/',
                "data: table:holdout.green",
            ),
            "table:<name> is read by engine: spark only",
        ),
    ],
    ids=[
        "spark-without-engine",
        "master-and-remote",
        "remote-not-sc",
        "unknown-metric",
        "table-local",
    ],
)
def test_engine_settings_are_checked_at_validate_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], expected: str
) -> None:
    spec = write_spec(tmp_path, SPARK_GATE.replace(*change))
    result = run_cli(capsys, "validate", str(spec))
    assert result.code == 1
    assert expected in result.err
    assert f"{spec}:" in result.err


@pytest.mark.parametrize(
    ("settings", "env", "expected"),
    [
        (None, None, ("master", DEFAULT_MASTER)),
        (None, "sc://connect:15002", ("remote", "sc://connect:15002")),
        ({"master": "local[2]"}, "sc://connect:15002", ("master", "local[2]")),
        ({"remote": "sc://a:1"}, "sc://b:2", ("remote", "sc://a:1")),
        ({"conf": {"spark.executor.memory": "1g"}}, None, ("master", DEFAULT_MASTER)),
    ],
)
def test_placement_file_then_spark_remote_then_local(
    settings: dict[str, object] | None,
    env: str | None,
    expected: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if env is None:
        monkeypatch.delenv("SPARK_REMOTE", raising=False)
    else:
        monkeypatch.setenv("SPARK_REMOTE", env)
    spark = SparkSpec.model_validate(settings) if settings is not None else None
    assert placement(spark) == expected


@pytest.mark.parametrize(
    ("data", "by_spark"),
    [
        ("table:holdout.green", True),
        ("s3a://bucket/green/", True),
        ("wasbs://c@a.blob.core.windows.net/x", True),
        ("dbfs:/mnt/holdout/", True),
        ("s3://bucket/green/", False),
        ("gs://bucket/x.parquet", False),
        ("abfs://c@a.dfs.core.windows.net/x", False),
        ("az://c/x", False),
        ("hdfs://namenode/x", False),
        ("file:///srv/x.parquet", False),
        ("holdout/", False),
    ],
)
def test_spark_reads_tables_and_hadoop_only_uris_the_tasks_read_the_rest(
    data: str, by_spark: bool
) -> None:
    assert spark_reads(data) is by_spark


def test_the_store_variables_are_this_stores_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "az-key")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    s3 = store_environment("s3")
    assert s3["AWS_SECRET_ACCESS_KEY"] == "s3-secret"
    assert s3["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert "AZURE_STORAGE_ACCOUNT_KEY" not in s3
    assert "PATH" not in s3
    assert store_environment("abfs")["AZURE_STORAGE_ACCOUNT_KEY"] == "az-key"
    assert store_environment("") == {}
    assert store_environment("hdfs") == {}


def _files(tmp_path: Path, shares: int, environment: dict[str, str]) -> Files:
    """A hive-partitioned folder of three parquet files of 5 row groups each, as a task gets it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlflow_gitops.gates.data import layout, open_source

    for part in range(3):
        folder = tmp_path / "data" / f"part={part}"
        folder.mkdir(parents=True)
        table = pa.table({"x": list(range(part * 100, part * 100 + 100))})
        pq.write_table(table, folder / "f.parquet", row_group_size=20)
    source = open_source("data/", tmp_path)
    fields, parts = layout(source)
    where = str(tmp_path / "data")
    return Files(source.data, "", where, False, fields, parts, shares, environment)


@pytest.mark.parametrize("shares", [1, 2, 3, 7])
def test_tasks_read_every_row_once_whatever_the_shares(tmp_path: Path, shares: int) -> None:
    """Units (file, share of its row groups) read by any task grouping: each row exactly once,
    with its partition column; the store's variables are set only while a task reads."""
    import pandas as pd

    files = _files(tmp_path, shares, {"MLFLOW_GITOPS_TEST_SECRET": "s"})
    ids = [pd.DataFrame({"id": list(range(0, len(files.units), 2))}),
           pd.DataFrame({"id": list(range(1, len(files.units), 2))})]  # fmt: skip
    seen = []
    for frame in read_units(files, iter(ids)):
        assert os.environ["MLFLOW_GITOPS_TEST_SECRET"] == "s"
        seen.append(frame)
    assert "MLFLOW_GITOPS_TEST_SECRET" not in os.environ
    rows = pd.concat(seen).sort_values("x")
    assert rows["x"].tolist() == list(range(300))
    assert (rows["part"] == rows["x"] // 100).all()


def test_an_object_replaced_since_the_listing_fails_the_task(tmp_path: Path) -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = _files(tmp_path, 1, {})
    pq.write_table(pa.table({"x": list(range(1000))}), tmp_path / "data" / "part=1" / "f.parquet")
    with pytest.raises(GateError, match="changed since it was listed: plan again"):
        list(read_units(files, iter([pd.DataFrame({"id": [0, 1, 2]})])))
