"""engine: spark in the file: validated offline, without importing pyspark; where it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlflow_gitops.gates.spark import DEFAULT_MASTER, placement
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
