"""The evaluate gate on the local engine against `engine: spark` with `local[2]`, on 2 cores.

    .venv/bin/python bench/spark.py [--quick | --smoke] [--data DIR] [--rows N]

Setup, under bench/work/spark/ (gitignored, made once and reused): the course's three regressors
trained on the real January 2021 file and scored on February (`train_and_log`, each run logs the
model and its DictVectorizer), the linear model registered as version 1 (the baseline) and the
gradient boosting model as version 2 (the candidate) in a SQLite registry; and a synthetic
TLC-shaped dataset of `--rows` rows (default 20 million; 2 million with --quick) written by the
demo's generator as a hive-partitioned parquet directory, 1 million rows per partition
(`trips/chunk=NN/part.parquet`).

1. Exactness on the real March 2021 file: both engines' metrics side by side, and the relative
   difference of each (the goal: rmse to 1e-9).
2. Wall time and peak memory of the gate's evaluation (the course's `prepare`, the run's
   DictVectorizer, both models' predict, rmse/mae/r2/mape) over 1 million, a quarter and all of
   the synthetic rows, each engine in a fresh process: the evaluation alone (the Spark session
   already started, the models already loaded on the driver), the Spark session's start, the
   driver's peak RSS (VmHWM of the Python process) and the peaks of its live descendants at the
   end (Spark's JVM, which runs the tasks in local mode, and the JVM's Python workers): the
   largest and their sum (an upper bound of what they held together). The local engine
   reads the directory file by file with its own streaming reader (`stream_frames`), as the gate
   does for one file.

--smoke: everything in a temporary folder instead of bench/work/spark, on generated months of a
few thousand rows (no real data), 2 partitions of 2,000 rows, one size: a minute or so, for
tests/test_bench_smoke.py. Measurements, never assertions: nothing here fails on a timing.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import BENCH, quiet_mlflow, table, write_results

# --smoke points both at a temporary folder and tiny partitions (read again by each --measure child)
WORK = Path(os.environ.get("BENCH_SPARK_WORK") or BENCH / "work" / "spark")
REAL = Path("/work/shared/data/nyc-green-taxi")
CHUNK_ROWS = int(os.environ.get("BENCH_SPARK_CHUNK_ROWS") or 1_000_000)
SMOKE_MONTH_ROWS = 3_000
METRICS = {
    "rmse": {"min_absolute_change": 0.0},
    "mae": {"threshold": 100.0},
    "r2": {"threshold": 0.0},
    "mape": {"threshold": 100.0},
}
HOOK = "from mlflow_gitops.demo.taxi import prepare as _prepare\n\n\ndef prepare(df):\n    return _prepare(df)\n"


def setup(data: Path, rows: int) -> dict[str, Any]:
    """The registry, the two models and the synthetic directory (each made once)."""
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "features.py").write_text(HOOK)
    state = WORK / "registry.json"
    if not state.exists():
        quiet_mlflow()
        from mlflow_gitops.demo.train import register_runs, train_and_log

        uri = f"sqlite:///{WORK}/mlflow.db"
        runs = train_and_log(
            data / "green_tripdata_2021-01.parquet",
            data / "green_tripdata_2021-02.parquet",
            "bench-spark",
            uri,
            (WORK / "artifacts").as_uri(),
        )
        linear, gbr = runs[0], runs[1]
        register_runs([linear, gbr], "bench-spark", uri)
        state.write_text(
            json.dumps({"uri": uri, "baseline": linear.run_id, "candidate": gbr.run_id})
        )
    trips = WORK / "trips"
    chunks = rows // CHUNK_ROWS
    for k in range(chunks):
        part = trips / f"chunk={k:02d}" / "part.parquet"
        if part.exists():
            continue
        import pyarrow as pa
        import pyarrow.parquet as pq

        from mlflow_gitops.demo.taxi import arrow_schema, generate_month

        frame = generate_month(2021, 1 + k % 12, CHUNK_ROWS, seed=1000 + k)
        part.parent.mkdir(parents=True, exist_ok=True)
        table_ = pa.Table.from_pandas(frame, schema=arrow_schema(), preserve_index=False)
        pq.write_table(table_, part, row_group_size=131_072)
        print(f"  wrote {part}", flush=True)
    return {**json.loads(state.read_text()), "chunks": chunks}


def measure(engine: str, data: str, state: dict[str, Any]) -> dict[str, Any]:
    """One evaluation in this (fresh) process: its wall time and memory."""
    quiet_mlflow()
    from mlflow_gitops.gates import evidence
    from mlflow_gitops.gates.port import Side
    from mlflow_gitops.registry.mlflow.evidence import MlflowEvidence
    from mlflow_gitops.spec.model import EvaluateSpec

    single = evidence.stream_frames

    def directory_frames(location: str, rows: int) -> Any:
        # the local engine's own reader, file after file (h4 brings directories to src)
        for path in sorted(glob.glob(location)) or [location]:
            yield from single(path, rows)

    evidence.stream_frames = directory_frames
    spec: dict[str, Any] = {
        "data": data,
        "prepare": "features:prepare",
        "preprocessor": "preprocessor/preprocessor.b",
        "metrics": METRICS,
    }
    if engine == "spark":
        spec |= {"engine": "spark", "spark": {"master": "local[2]"}}
    gate = EvaluateSpec.model_validate(spec)
    ev = MlflowEvidence(state["uri"])
    candidate = Side("models:/bench-spark/2", state["candidate"])
    baseline = Side("models:/bench-spark/1", state["baseline"])
    ev.load_sides(gate, candidate, baseline)  # loaded once per process, outside the timing
    start_s = 0.0
    if engine == "spark":
        from mlflow_gitops.gates import spark

        t0 = time.perf_counter()
        spark.session(gate.spark)
        start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = ev.evaluate(gate, WORK, candidate, baseline, None)
    wall = time.perf_counter() - t0
    hwm = _peak_kb(os.getpid())
    descendants = _descendants(os.getpid())  # Spark's JVM and its Python workers, still alive
    children = [_peak_kb(pid) for pid in descendants]
    if engine == "spark":
        from mlflow_gitops.gates import spark

        spark.stop()
    return {
        "engine": engine,
        "data": data,
        "rows": result.rows,
        "evaluate_s": round(wall, 3),
        "spark_start_s": round(start_s, 3),
        "driver_peak_rss_mb": round(hwm / 1024, 1),
        "largest_child_peak_rss_mb": round(max(children, default=0) / 1024, 1),
        "children_peak_rss_sum_mb": round(sum(children) / 1024, 1),
        "children": len(children),
        "candidate": result.candidate,
        "baseline": result.baseline,
    }


def _peak_kb(pid: int) -> int:
    """VmHWM of a live process, in kB (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0
    )


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            out += [kid, *_descendants(kid)]
    return out


def fresh(engine: str, data: str) -> dict[str, Any]:
    """`measure` in a new interpreter, so each figure has its own process and peak."""
    done = subprocess.run(
        [sys.executable, __file__, "--measure", engine, data],
        capture_output=True,
        text=True,
        check=False,
        cwd=BENCH,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
    )
    if done.returncode != 0:
        raise SystemExit(f"{engine} on {data} failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 million synthetic rows")
    parser.add_argument("--data", type=Path, default=REAL, help="the real TLC 2021 files")
    parser.add_argument("--rows", type=int, default=20_000_000, help="synthetic rows")
    parser.add_argument(
        "--smoke", action="store_true", help="generated data in a temporary folder, seconds"
    )
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke and not os.environ.get("BENCH_SPARK_WORK"):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="bench-spark-smoke-") as tmp:
            env = {**os.environ, "BENCH_SPARK_WORK": tmp, "BENCH_SPARK_CHUNK_ROWS": "2000"}
            argv = [sys.executable, __file__, *sys.argv[1:]]
            raise SystemExit(subprocess.run(argv, env=env, check=False).returncode)
    if args.smoke:  # in the child above: generated months instead of the real files
        from mlflow_gitops.demo.taxi import write_months

        args.data = WORK / "months"
        for month in (1, 2, 3):
            write_months(args.data, rows=SMOKE_MONTH_ROWS, months=((2021, month),))
    if args.measure:
        state = json.loads((WORK / "registry.json").read_text())
        print(json.dumps(measure(args.measure[0], args.measure[1], state)))
        return
    rows = 4_000 if args.smoke else 2_000_000 if args.quick else args.rows
    print(f"setup under {WORK} ({rows:,} synthetic rows)", flush=True)
    state = setup(args.data, rows)
    march = str(args.data / "green_tripdata_2021-03.parquet")

    which = "a generated March (--smoke)" if args.smoke else "the real March 2021 file"
    print(f"\n1. exactness on {which}", flush=True)
    local, on_spark = fresh("local", march), fresh("spark", march)
    exact_rows = []
    for side in ("candidate", "baseline"):
        for name, value in local[side].items():
            other = on_spark[side][name]
            exact_rows.append(
                [side, name, repr(value), repr(other), abs(other - value) / abs(value)]
            )
    print(table(["side", "metric", "local", "spark local[2]", "relative diff"], exact_rows))

    print("\n2. time and memory by size", flush=True)
    chunks = state["chunks"]
    sizes = [chunks] if args.smoke else sorted({1, min(10, max(1, chunks // 4)), chunks})
    runs = []
    for k in sizes:
        # one glob both readers understand (Python's glob and Hadoop's)
        chosen = "*" if k == chunks else f"chunk=0[0-{k - 1}]"
        data = str(WORK / "trips" / chosen / "part.parquet")
        # --smoke: Spark already ran in part 1; its start (tens of seconds) is paid once
        for engine in ("local",) if args.smoke else ("local", "spark"):
            print(f"  {engine} on {k * CHUNK_ROWS:,} rows ...", flush=True)
            runs.append({**fresh(engine, data), "size_rows": k * CHUNK_ROWS})
    print(
        table(
            [
                "rows",
                "engine",
                "evaluate s",
                "spark start s",
                "driver peak MB",
                "largest child MB",
                "children sum MB",
                "candidate rmse",
            ],
            [
                [
                    r["rows"],
                    r["engine"],
                    r["evaluate_s"],
                    r["spark_start_s"],
                    r["driver_peak_rss_mb"],
                    r["largest_child_peak_rss_mb"],
                    r["children_peak_rss_sum_mb"],
                    repr(r["candidate"]["rmse"]),
                ]
                for r in runs
            ],
        )
    )
    path = write_results(
        "spark",
        {
            "synthetic_rows": rows,
            "cores": os.cpu_count(),
            "exactness_march_2021": {"local": local, "spark": on_spark},
            "runs": runs,
        },
        args.quick,
        smoke=args.smoke,
    )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
