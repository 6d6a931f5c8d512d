"""Every benchmark in bench/ still runs: each script's `--smoke` mode (tiny sizes, no shared data)
to the end, with its figures written. A change that breaks a benchmark fails here, not on the
day someone measures again. Nothing here looks at a timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))
SRC = str(BENCH.parent / "src")

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_benchmark_runs_in_smoke_mode(script: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "TMPDIR": str(tmp_path),  # the figures of a smoke run land here, never in bench/results
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    committed = {p.name: p.read_bytes() for p in (BENCH / "results").glob("*.json")}
    done = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        cwd=BENCH,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, (
        f"bench/{script.name} --smoke exited {done.returncode}:\n"
        f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    )
    figures = tmp_path / "mlflow-gitops-bench-smoke" / f"{script.stem}.json"
    assert figures.is_file(), (
        f"bench/{script.name} --smoke wrote no figures:\n{done.stdout[-2000:]}"
    )
    doc = json.loads(figures.read_text(encoding="utf-8"))
    assert doc["benchmark"] == script.stem
    assert doc["smoke"] is True
    # a smoke run never overwrites the committed figures
    assert {p.name: p.read_bytes() for p in (BENCH / "results").glob("*.json")} == committed
