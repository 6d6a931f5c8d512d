"""The tool's evaluation gate against MLflow's own evaluate + validate path, on the same decision.

    .venv/bin/python bench/gates.py [--quick | --smoke] [--data DIR] [--repeats N] [--big-rows N]

Setup, in a temporary folder: taxi months shaped like the TLC green taxi 2021 files (January
76,518 rows, February 64,572, March 83,827; or the real files with --data), the course's three
regressors trained on January and scored on February by the demo's `train_and_log` (each run
logs the model and the fitted DictVectorizer as `preprocessor/preprocessor.b`), the gradient
boosting model registered as version 1 in Production, the random forest as version 2, the
linear model as version 3 and the random forest's run again as version 4, in a SQLite registry.

0. A series of three candidates (v2, v3, v4) against the champion v1, as three pull requests
   would gate them, on March and on a generated file of --big-rows rows (2 million): the tool,
   each gate a fresh plan starting with no record on any version (the first gate scores both
   models and records their scores on both versions; the next two read the champion's scores
   and load only the candidate), against `mlflow.models.evaluate` for both models +
   `validate_evaluation_results` for each gate; the numbers of both compared (relative
   difference), and the cold first gate against its floor (below).
1. The decision "may the random forest take Production from the gradient boosting model?" made
   on the March data three ways, each going first in turn:
   - the tool: `make_plan` with a registry.yaml whose Production gate is an `evaluate` gate
     (`rmse: {min_absolute_change: 0}`, not worse), end to end and cold (the cached result on the
     candidate is deleted before every repeat and every repeat loads both models);
   - MLflow: read and prepare March, load both models and their preprocessors, then
     `mlflow.models.evaluate(model_type="regressor")` for each (explainability off: SHAP is not
     installed, and it would only add time) and `mlflow.validate_evaluation_results`;
   - the floor: the same preparation, one transform and the two predictions with the models
     already loaded and no framework around them: what any path has to spend;
   - the tool again with a latency gate beside the evaluate gate (one pass serves both: the
     latency is timed on the evaluation's own first predictions), and the tool with the same
     March file read from an S3 bucket (moto in server mode on loopback, tests/s3server.py).
   MLflow's MetricThreshold refuses `min_absolute_change: 0`; it runs with the smallest positive
   double, which is the same rule (`candidate <= baseline`, see MLFLOW_MIN_CHANGE). The opposite
   question (v1 for alias champion against v2) must fail on both paths, and both rules are
   compared on equal values and one ulp either side.
2. A re-plan that finds the recorded result: wall time and models loaded.
3. Memory of a process that plans the same gate over a generated file of 10 million rows
   (1 million with --quick) and over 100,000 rows, each in a fresh subprocess: peak (VmHWM) and
   a trace of the resident set during the plan, with the reader as it is in src
   (pyarrow.dataset, which also reads directories, globs and object stores) and with the
   single-file ParquetFile reader it replaced (parquetfile_stream_frames).

--smoke runs every part on a few thousand generated rows (one memory child) in a minute or two,
writing its figures into the temporary folder: tests/test_bench_smoke.py runs it so that a change
that breaks the benchmark fails CI. Measurements, never assertions: nothing here fails on a
timing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import median, quiet_mlflow, table, write_results

GOAL_SPEEDUP = 3.0  # issue 12: at least 3x faster than MLflow's evaluate path
GOAL_FLOOR = 1.25  # issue 12: the local engine within 1.25x of the floor
GOAL_FIRST_GATE = 1.15  # issue 19: a cold first gate of a series within 1.15x of its floor
GOAL_SAME = 1e-9  # issue 19: the series' numbers equal MLflow's to 1e-9 (relative)
BUCKET = "bench-holdout"
MODEL = "taxi-duration"
GATE_TAG_PREFIX = "mlflow_gitops.gate."  # record.GATE_TAG_PREFIX
SCORES_TAG_PREFIX = "mlflow_gitops.scores."  # record.SCORES_TAG_PREFIX
PREPROCESSOR = "preprocessor/preprocessor.b"
# rows of the TLC green taxi 2021 files: the generated months have the same shape
MONTH_ROWS = {1: 76_518, 2: 64_572, 3: 83_827}
SMALL_ROWS = 100_000
CHUNK_ROWS = 500_000  # rows generated and written (one parquet row group) at a time
# MLflow's MetricThreshold refuses min_absolute_change <= 0; the smallest positive double makes
# `baseline - change` round back to `baseline` for any rmse above 1e-292, so MLflow's check
# `candidate <= baseline - change` is exactly the tool's "not worse" (`candidate <= baseline`)
MLFLOW_MIN_CHANGE = math.ulp(0.0)
HOOK = '''"""The course's preparation, as registry.yaml's `prepare:` hook (examples/features.py)."""

from mlflow_gitops.demo.taxi import prepare as _prepare


def prepare(df):
    return _prepare(df)
'''


@dataclass(frozen=True)
class Setup:
    folder: Path
    uri: str
    march: Path
    baseline: tuple[int, str]  # (version, run id): gradient boosting, holds Production
    candidate: tuple[int, str]  # random forest
    spec: Path  # registry.yaml gating Production on the March data
    train_seconds: float
    # the series of candidates against the champion: the random forest (v2), the linear model
    # (v3), the random forest's run registered again (v4: another version, scored anew)
    series: tuple[tuple[int, str], ...] = ()


def registry_yaml(data: Path | str, candidate: int = 2) -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        models:
          {MODEL}:
            versions:
              - {{version: {candidate}, stage: Production}}
            gates:
              Production:
                - evaluate:
                    data: {data}
                    prepare: features:prepare
                    preprocessor: {PREPROCESSOR}
                    metrics:
                      rmse: {{min_absolute_change: 0}}
        """
    )


def latency_yaml(data: Path | str) -> str:
    """The Production gate with a latency gate beside the evaluate gate: one pass serves both."""
    return registry_yaml(data) + "        - latency: {batch_rows: 1000, p95_ms: 60000}\n"


def reverse_yaml(data: Path) -> str:
    """The opposite decision: the gradient boosting model (v1) for alias `champion`, compared
    with the random forest (v2) named as baseline."""
    return textwrap.dedent(
        f"""\
        version: 1
        models:
          {MODEL}:
            aliases: {{champion: 1}}
            gates:
              alias:champion:
                - evaluate:
                    data: {data}
                    prepare: features:prepare
                    preprocessor: {PREPROCESSOR}
                    baseline: "2"
                    metrics:
                      rmse: {{min_absolute_change: 0}}
        """
    )


def build(tmp: Path, real_data: Path | None, month_rows: dict[int, int] | None = None) -> Setup:
    """Months, the three trained runs, versions 1 (GBR, Production), 2 (RF), 3 (linear) and 4
    (the RF run again)."""
    from mlflow import MlflowClient

    from mlflow_gitops.demo.taxi import file_name, write_months
    from mlflow_gitops.demo.train import register_runs, train_and_log

    data = tmp / "data"
    if real_data is not None:
        data.mkdir()
        for month in MONTH_ROWS:
            shutil.copy(real_data / file_name(2021, month), data)
    else:
        for month, rows in (month_rows or MONTH_ROWS).items():
            write_months(data, rows=rows, months=((2021, month),))
    jan, feb, march = (data / file_name(2021, m) for m in MONTH_ROWS)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    started = time.perf_counter()
    runs = train_and_log(jan, feb, "bench-gates", uri, (tmp / "artifacts").as_uri())
    train_seconds = time.perf_counter() - started
    by_type = {r.model_type: r for r in runs}
    gbr, rf = by_type["GradientBoostingRegressor"], by_type["RandomForestRegressor"]
    lr = by_type["LinearRegression"]
    v_gbr, v_rf, v_lr, v_rf2 = register_runs([gbr, rf, lr, rf], MODEL, uri)
    MlflowClient(tracking_uri=uri, registry_uri=uri).transition_model_version_stage(
        MODEL, str(v_gbr), "Production"
    )
    (tmp / "features.py").write_text(HOOK, encoding="utf-8")
    spec = tmp / "registry.yaml"
    spec.write_text(registry_yaml(march), encoding="utf-8")
    series = ((v_rf, rf.run_id), (v_lr, lr.run_id), (v_rf2, rf.run_id))
    return Setup(
        tmp, uri, march, (v_gbr, gbr.run_id), (v_rf, rf.run_id), spec, train_seconds, series
    )


# --- the tool's gate --------------------------------------------------------------------------


def timed_evidence(uri: str) -> Any:
    """MlflowEvidence that also adds up the seconds spent loading models and evaluating."""
    from mlflow_gitops.registry.mlflow.evidence import MlflowEvidence

    class TimedEvidence(MlflowEvidence):
        def __init__(self, uri: str) -> None:
            super().__init__(uri)
            self.seconds: dict[str, float] = {
                "load_models": 0.0,
                "fetch_preprocessors": 0.0,
                "evaluate": 0.0,
                "digest": 0.0,
            }

        def load_model(self, side: Any) -> Any:
            started = time.perf_counter()
            try:
                return super().load_model(side)
            finally:
                self.seconds["load_models"] += time.perf_counter() - started

        def load_preprocessor(self, side: Any, artifact: str) -> Any:
            started = time.perf_counter()
            try:
                return super().load_preprocessor(side, artifact)
            finally:
                self.seconds["fetch_preprocessors"] += time.perf_counter() - started

        def evaluate(self, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return super().evaluate(*args, **kwargs)
            finally:
                self.seconds["evaluate"] += time.perf_counter() - started

        def data_digest(self, data: str, folder: Path) -> str:
            started = time.perf_counter()
            try:
                return super().data_digest(data, folder)
            finally:
                self.seconds["digest"] += time.perf_counter() - started

    return TimedEvidence(uri)


def tool_plan(spec: Path, uri: str) -> dict[str, Any]:
    """make_plan end to end with a fresh evidence object (no model loaded before)."""
    from mlflow_gitops.reconcile import make_plan
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry
    from mlflow_gitops.spec.load import load

    scratch = Path(tempfile.gettempdir())
    before = set(scratch.iterdir())
    started = time.perf_counter()
    evidence = timed_evidence(uri)
    plan = make_plan(load(spec), MlflowRegistry(uri), evidence, datetime.now(UTC)).plan
    seconds = time.perf_counter() - started
    left = sorted(
        str(f.relative_to(scratch))
        for d in set(scratch.iterdir()) - before
        for f in ([d, *d.rglob("*")] if d.is_dir() else [d])
        if f.is_file()
    )
    gate = next(g for g in plan.gates if g.gate in ("evaluate", "rollback"))
    latency = next((g for g in plan.gates if g.gate == "latency"), None)
    check = next((c for c in gate.checks if c.name == "rmse"), None)
    rows = next((c.candidate for c in gate.checks if c.name == "rows"), None)
    return {
        "seconds": seconds,
        "verdict": gate.verdict,
        "cached": gate.cached,
        "reused": [f"{r.side} v{r.version}" for r in gate.reused],
        "message": gate.message,
        "loads": evidence.loads,
        "rows": int(rows) if rows is not None else None,
        "candidate_rmse": check.candidate if check else None,
        "baseline_rmse": check.baseline if check else None,
        "breakdown": {k: round(v, 4) for k, v in evidence.seconds.items()},
        # the engine's pass alone: evaluate without loading models and fetching preprocessors
        "pass_seconds": evidence.seconds["evaluate"]
        - evidence.seconds["load_models"]
        - evidence.seconds["fetch_preprocessors"],
        "latency_p95_ms": {c.name: [c.candidate, c.baseline] for c in latency.checks}
        if latency
        else None,
        "temp_files_left": left,  # files MlflowEvidence downloaded and never removed
    }


def clear_cached(uri: str) -> None:
    """Cold again: every gate record and every recorded score removed from every version."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for version in client.search_model_versions(f"name = '{MODEL}'"):
        for key in version.tags:
            if key.startswith((GATE_TAG_PREFIX, SCORES_TAG_PREFIX)):
                client.delete_model_version_tag(MODEL, version.version, key)


# --- MLflow's own path --------------------------------------------------------------------------


@contextlib.contextmanager
def mlflow_globals(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking and registry URIs set to `uri` (what a user of MLflow
    alone sets for `models:/` and `start_run`), restored afterwards: the tool's own path never
    reads them, so the benchmark must not leave them set for it."""
    import mlflow

    saved = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved[0])
        mlflow.set_registry_uri(saved[1])
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def mlflow_path(
    s: Setup, data: Path | None = None, candidate: tuple[int, str] | None = None
) -> dict[str, Any]:
    """What a user writes with MLflow alone: prepare the data, load both models and their
    preprocessors, evaluate each, validate the candidate against the baseline.

    The models take the DictVectorizer's sparse matrix, which `mlflow.models.evaluate` does not
    accept as data (a list, numpy array, pandas or Spark DataFrame; a dense copy of the one-hot
    matrix would take gigabytes), so each model is passed as a function of the prepared
    DataFrame that applies the run's preprocessor and predicts through the pyfunc model, the way
    MLflow documents evaluating a custom callable."""
    with mlflow_globals(s.uri):
        return _mlflow_path(s, data or s.march, candidate or s.candidate)


def _mlflow_path(s: Setup, data: Path, candidate: tuple[int, str]) -> dict[str, Any]:
    import mlflow
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    from mlflow_gitops.demo.taxi import prepare

    mlflow.set_experiment("bench-gates-mlflow-evaluate")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    dicts, y = prepare(pd.read_parquet(data))
    frame = pd.DataFrame(dicts).assign(duration=y)
    seconds["prepare_data"] = time.perf_counter() - started

    client = mlflow.MlflowClient(tracking_uri=s.uri, registry_uri=s.uri)
    results: dict[str, Any] = {}
    seconds["load_models"] = seconds["evaluate"] = 0.0
    for side, (version, run_id) in (("candidate", candidate), ("baseline", s.baseline)):
        t0 = time.perf_counter()
        model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, PREPROCESSOR, tmp)
            with open(local, "rb") as fh:
                vectorizer = pickle.load(fh)
        t1 = time.perf_counter()

        def predict(x: pd.DataFrame, model: Any = model, vectorizer: Any = vectorizer) -> Any:
            return model.predict(vectorizer.transform(x.to_dict(orient="records")))

        with mlflow.start_run(run_name=f"evaluate {side} v{version}"):
            results[side] = mlflow.models.evaluate(
                predict,
                frame,
                targets="duration",
                model_type="regressor",
                evaluator_config={"log_model_explainability": False},
            )
        seconds["load_models"] += t1 - t0
        seconds["evaluate"] += time.perf_counter() - t1

    t0 = time.perf_counter()
    threshold = MetricThreshold(min_absolute_change=MLFLOW_MIN_CHANGE, greater_is_better=False)
    try:
        mlflow.validate_evaluation_results(
            {"root_mean_squared_error": threshold}, results["candidate"], results["baseline"]
        )
        verdict, message = "pass", "passed"
    except ModelValidationFailedException as exc:
        verdict, message = "fail", str(exc).strip().splitlines()[-1]
    seconds["validate"] = time.perf_counter() - t0
    total = time.perf_counter() - started
    return {
        "seconds": total,
        "verdict": verdict,
        "message": message,
        "rows": int(results["candidate"].metrics["example_count"]),
        "candidate_rmse": results["candidate"].metrics["root_mean_squared_error"],
        "baseline_rmse": results["baseline"].metrics["root_mean_squared_error"],
        "breakdown": {k: round(v, 4) for k, v in seconds.items()},
    }


def warm_up() -> None:
    """Import what either path imports on first use, so the first repeat is not charged for it."""
    import mlflow.models.evaluation.default_evaluator
    import mlflow.models.evaluation.evaluators.regressor
    import mlflow.pyfunc  # noqa: F401
    import pyarrow.parquet  # noqa: F401


def floor_inputs(s: Setup) -> tuple[Any, Any, Any]:
    """Both models (pyfunc) and the preprocessor, loaded once for the floor measurement, each
    from the location its version names in this registry (no process-wide MLflow URI)."""
    import mlflow
    import mlflow.pyfunc

    client = mlflow.MlflowClient(tracking_uri=s.uri, registry_uri=s.uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(s.candidate[1], PREPROCESSOR, tmp)
        with open(local, "rb") as fh:
            vectorizer = pickle.load(fh)
    candidate, baseline = (
        mlflow.pyfunc.load_model(client.get_model_version_download_uri(MODEL, str(v)))
        for v, _ in (s.candidate, s.baseline)
    )
    return candidate, baseline, vectorizer


def floor(s: Setup, loaded: tuple[Any, Any, Any], data: Path | None = None) -> dict[str, Any]:
    """The work any path must do, with no framework around it: read and prepare March once,
    transform once, predict with both (already loaded) models, two RMSEs."""
    import numpy as np
    import pandas as pd

    from mlflow_gitops.demo.taxi import prepare

    candidate, baseline, vectorizer = loaded
    started = time.perf_counter()
    dicts, y = prepare(pd.read_parquet(data or s.march))
    x = vectorizer.transform(dicts)
    rmse = [
        float(np.sqrt(np.mean((np.asarray(m.predict(x)).reshape(-1) - y) ** 2)))
        for m in (candidate, baseline)
    ]
    return {
        "seconds": time.perf_counter() - started,
        "rows": len(y),
        "candidate_rmse": rmse[0],
        "baseline_rmse": rmse[1],
        "verdict": "pass" if rmse[0] <= rmse[1] else "fail",
    }


PATHS = ("tool", "mlflow", "floor", "tool_latency", "tool_s3")


def compare(s: Setup, repeats: int, s3_spec: Path) -> dict[str, Any]:
    """Every path in turn, each going first in turn, in one process: the ratios come from
    runs made under the same load."""
    warm_up()
    loaded = floor_inputs(s)
    latency_spec = s.folder / "registry-latency.yaml"
    latency_spec.write_text(latency_yaml(s.march), encoding="utf-8")
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in PATHS}
    n = len(PATHS)
    for i in range(repeats):
        for which in PATHS[i % n :] + PATHS[: i % n]:  # each path goes first in turn
            if which == "mlflow":
                runs["mlflow"].append(mlflow_path(s))
            elif which == "floor":
                runs["floor"].append(floor(s, loaded))
            else:
                clear_cached(s.uri)
                spec = {"tool": s.spec, "tool_latency": latency_spec, "tool_s3": s3_spec}[which]
                runs[which].append(tool_plan(spec, s.uri))
    return runs


@contextlib.contextmanager
def bucket(s: Setup) -> Iterator[Path]:
    """The March file in a bucket of an S3-compatible server on loopback (moto, with
    authentication), the reader's credentials in this process's standard AWS environment, and
    a registry.yaml gating on s3://."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.s3server import MotoServer

    with MotoServer(s.folder / "moto") as moto:
        moto.client("s3").create_bucket(Bucket=BUCKET)
        moto.client("s3").upload_file(str(s.march), BUCKET, f"green/{s.march.name}")
        saved = {k: os.environ.get(k) for k in moto.env(moto.reader)}
        os.environ.update(moto.env(moto.reader))
        spec = s.folder / "registry-s3.yaml"
        spec.write_text(registry_yaml(f"s3://{BUCKET}/green/{s.march.name}"), encoding="utf-8")
        try:
            yield spec
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def compare_with_bucket(s: Setup, repeats: int) -> dict[str, Any]:
    with bucket(s) as s3_spec:
        return compare(s, repeats, s3_spec)


def reverse(s: Setup) -> dict[str, Any]:
    """Both paths on the opposite question (may v1 replace v2?), which must fail for both."""
    spec = s.folder / "registry-reverse.yaml"
    spec.write_text(reverse_yaml(s.march), encoding="utf-8")
    swapped = dataclasses.replace(s, candidate=s.baseline, baseline=s.candidate, spec=spec)
    tool, theirs = tool_plan(spec, s.uri), mlflow_path(swapped)
    return {
        "question": "v1 (gradient boosting) to alias champion, baseline v2 (random forest)",
        "tool": tool,
        "mlflow": theirs,
        "same_verdict": tool["verdict"] == theirs["verdict"],
    }


def threshold_equivalence() -> list[dict[str, Any]]:
    """The tool's `min_absolute_change: 0` against MLflow's validation with the smallest
    positive change, on the values where they could part: equal, one ulp either side."""
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation import EvaluationResult
    from mlflow.models.evaluation.validation import (
        MetricThresholdClassException,
        ModelValidationFailedException,
        validate_evaluation_results,
    )

    from mlflow_gitops.gates.verdict import compare as tool_compare
    from mlflow_gitops.spec.model import MetricThreshold as ToolThreshold

    try:
        MetricThreshold(min_absolute_change=0.0, greater_is_better=False)
        zero_refused = False
    except MetricThresholdClassException:
        zero_refused = True
    theirs = MetricThreshold(min_absolute_change=MLFLOW_MIN_CHANGE, greater_is_better=False)
    ours = ToolThreshold(min_absolute_change=0)
    out = []
    for base in (6.412525358161101, 1e-6, 1234.5):
        for label, cand in (
            ("equal", base),
            ("1 ulp better", math.nextafter(base, -math.inf)),
            ("1 ulp worse", math.nextafter(base, math.inf)),
        ):
            [judged] = tool_compare("rmse", ours, cand, base)
            try:
                validate_evaluation_results(
                    {"root_mean_squared_error": theirs},
                    EvaluationResult({"root_mean_squared_error": cand}, {}),
                    EvaluationResult({"root_mean_squared_error": base}, {}),
                )
                mlflow_verdict = "pass"
            except ModelValidationFailedException:
                mlflow_verdict = "fail"
            out.append(
                {
                    "case": label,
                    "baseline": base,
                    "candidate": cand,
                    "tool": judged.check.verdict,
                    "mlflow": mlflow_verdict,
                    "mlflow_refuses_zero": zero_refused,
                }
            )
    return out


def replan(s: Setup, repeats: int) -> list[dict[str, Any]]:
    """The result recorded by a cold plan is found: no model is loaded. (The other specs of
    the comparison gate the same version on other inputs: one cold plan records this one's.)"""
    clear_cached(s.uri)
    tool_plan(s.spec, s.uri)
    return [tool_plan(s.spec, s.uri) for _ in range(repeats)]


# --- a series of candidates against one champion -----------------------------------------------


def series(s: Setup, data: Path, repeats: int, label: str) -> dict[str, Any]:
    """Three candidates against the champion in turn, as three pull requests would gate them.
    The tool: each gate a fresh plan with a fresh evidence (a new CI job), starting cold (no
    record on any version); the first gate scores both models and records their scores, the
    next two read the champion's instead of loading and scoring it. MLflow's path: each gate
    evaluates both models and validates. The floor: the first gate's work with no framework,
    with both models loaded beforehand (their loading is timed apart).
    Tool series, MLflow series and floor take turns going first."""
    specs = []
    for version, _ in s.series:
        spec = s.folder / f"registry-series-{label}-v{version}.yaml"
        spec.write_text(registry_yaml(data, version), encoding="utf-8")
        specs.append(spec)
    runs: dict[str, list[Any]] = {"tool": [], "mlflow": [], "floor": []}
    order = ("tool", "mlflow", "floor")
    for i in range(repeats):
        for which in order[i % 3 :] + order[: i % 3]:
            if which == "tool":
                clear_cached(s.uri)
                runs["tool"].append([tool_plan(spec, s.uri) for spec in specs])
            elif which == "mlflow":
                runs["mlflow"].append([mlflow_path(s, data, c) for c in s.series])
            else:
                # the floor predicts with models loaded beforehand; loading them again is timed
                # apart (a cold gate must load both: the load-and-predict floor adds it)
                started = time.perf_counter()
                fresh = floor_inputs(s)
                load_seconds = time.perf_counter() - started
                runs["floor"].append({**floor(s, fresh, data), "load_seconds": load_seconds})
    return {"data": str(data.name), "candidates": [v for v, _ in s.series], **runs}


def relative(a: float | None, b: float | None) -> float:
    """|a - b| / |b|: how far the tool's number is from MLflow's."""
    if a is None or b is None:
        return math.inf
    return abs(a - b) / abs(b) if b else abs(a - b)


def summarize_series(r: dict[str, Any]) -> dict[str, Any]:
    """Each series' total (median over repeats), the speed-up, the first gate over its floor,
    and the largest relative difference between the tool's numbers and MLflow's."""
    tool_totals = [sum(g["seconds"] for g in run) for run in r["tool"]]
    mlflow_totals = [sum(g["seconds"] for g in run) for run in r["mlflow"]]
    first = median([run[0]["seconds"] for run in r["tool"]])
    floor_s = median([f["seconds"] for f in r["floor"]])
    load_floor_s = median([f["seconds"] + f["load_seconds"] for f in r["floor"]])
    differences = [
        relative(t[side], m[side])
        for tool_run, mlflow_run in zip(r["tool"], r["mlflow"], strict=True)
        for t, m in zip(tool_run, mlflow_run, strict=True)
        for side in ("candidate_rmse", "baseline_rmse")
    ]
    verdicts = [
        [t["verdict"] == m["verdict"] for t, m in zip(tr, mr, strict=True)]
        for tr, mr in zip(r["tool"], r["mlflow"], strict=True)
    ]
    speedup = median(mlflow_totals) / median(tool_totals)
    return {
        "rows": r["tool"][0][0]["rows"],
        "tool_series_seconds": median(tool_totals),
        "mlflow_series_seconds": median(mlflow_totals),
        "speedup": speedup,
        "speedup_paired_median": median(
            [m / t for t, m in zip(tool_totals, mlflow_totals, strict=True)]
        ),
        "goal_speedup_met": speedup >= GOAL_SPEEDUP,
        "tool_gate_seconds": [
            median([run[i]["seconds"] for run in r["tool"]]) for i in range(len(r["candidates"]))
        ],
        "mlflow_gate_seconds": [
            median([run[i]["seconds"] for run in r["mlflow"]]) for i in range(len(r["candidates"]))
        ],
        "models_loaded_per_gate": [g["loads"] for g in r["tool"][0]],
        "reused_per_gate": [g["reused"] for g in r["tool"][0]],
        "first_gate_seconds": first,
        "floor_seconds": floor_s,
        "first_gate_over_floor": first / floor_s,
        "goal_first_gate_met": first / floor_s <= GOAL_FIRST_GATE,
        # the same ratio within each repeat (the gate and the floor of one repeat), and against
        # the floor with both models' loading added (the issue's "load-and-predict floor")
        "first_gate_over_floor_paired_median": median(
            [run[0]["seconds"] / f["seconds"] for run, f in zip(r["tool"], r["floor"], strict=True)]
        ),
        "load_and_predict_floor_seconds": load_floor_s,
        "first_gate_over_load_and_predict_floor": first / load_floor_s,
        "max_relative_difference": max(differences),
        "same_numbers": max(differences) <= GOAL_SAME,
        "same_verdicts": all(all(v) for v in verdicts),
        "verdicts": [g["verdict"] for g in r["tool"][0]],
    }


def report_series(label: str, r: dict[str, Any], s: dict[str, Any]) -> None:
    print(
        f"\nseries on {label} ({s['rows']:,} rows after preparation): candidates "
        f"{', '.join(f'v{v}' for v in r['candidates'])} against champion v1, median of "
        f"{len(r['tool'])} run(s)"
    )
    rows = [
        [
            f"v{v}",
            s["tool_gate_seconds"][i],
            s["models_loaded_per_gate"][i],
            ", ".join(s["reused_per_gate"][i]) or "-",
            s["mlflow_gate_seconds"][i],
            r["tool"][0][i]["candidate_rmse"],
            r["tool"][0][i]["verdict"],
        ]
        for i, v in enumerate(r["candidates"])
    ]
    rows.append(["series", s["tool_series_seconds"], "", "", s["mlflow_series_seconds"], "", ""])
    print(
        table(
            ["gate", "tool s", "models loaded", "scores read", "MLflow s", "rmse", "verdict"],
            rows,
        )
    )
    print(
        f"speed-up over MLflow's series {s['speedup']:.2f}x (paired {s['speedup_paired_median']:.2f}x;"
        f" goal {GOAL_SPEEDUP:.0f}x: {'met' if s['goal_speedup_met'] else 'NOT met'}); first gate "
        f"{s['first_gate_seconds']:.2f} s = {s['first_gate_over_floor']:.2f}x its floor "
        f"({s['floor_seconds']:.2f} s; goal {GOAL_FIRST_GATE}x: "
        f"{'met' if s['goal_first_gate_met'] else 'NOT met'}; paired median "
        f"{s['first_gate_over_floor_paired_median']:.2f}x; "
        f"{s['first_gate_over_load_and_predict_floor']:.2f}x the floor with both models' loading, "
        f"{s['load_and_predict_floor_seconds']:.2f} s); largest relative difference from "
        f"MLflow's rmse {s['max_relative_difference']:.1e} (goal {GOAL_SAME:g}: "
        f"{'met' if s['same_numbers'] else 'NOT met'}); same verdicts: {s['same_verdicts']}"
    )


# --- memory ------------------------------------------------------------------------------------


def write_big(path: Path, rows: int) -> float:
    """A TLC-shaped parquet file of `rows` rows, written chunk by chunk (one row group each) so
    generating it takes bounded memory. Chunks are successive months of the same city (seed 0,
    the layout the models were trained on); seconds taken."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlflow_gitops.demo.taxi import arrow_schema, generate_month

    started = time.perf_counter()
    schema = arrow_schema()
    with pq.ParquetWriter(path, schema) as writer:
        done, chunk = 0, 0
        while done < rows:
            n = min(CHUNK_ROWS, rows - done)
            frame = generate_month(2021 + chunk // 12, 1 + chunk % 12, n, seed=0)
            writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
            done, chunk = done + n, chunk + 1
    return time.perf_counter() - started


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class RssSampler:
    """Samples the process's resident set every few milliseconds while the plan runs: a flat
    trace means bounded memory, a rising one a leak (the peak alone cannot tell them apart)."""

    def __init__(self, every: float = 0.1) -> None:
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.perf_counter()
        while not self._stop.wait(self.every):
            self.samples.append((time.perf_counter() - started, status_kb("VmRSS")))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def trace_mb(self, points: int = 10) -> list[float]:
        """The largest RSS seen in each tenth of the run, in MiB."""
        if not self.samples:
            return []
        end = self.samples[-1][0]
        out = []
        for i in range(points):
            lo, hi = end * i / points, end * (i + 1) / points
            window = [kb for t, kb in self.samples if lo <= t <= hi]
            out.append(round(max(window) / 1024, 1) if window else float("nan"))
        return out


def parquetfile_stream_frames(location: str, rows: int) -> Iterator[Any]:
    """The single-file reader `evidence.stream_frames` used before it read directories, globs
    and object stores through pyarrow.dataset: ParquetFile.iter_batches with pre_buffer=False
    (with pyarrow's default pre_buffer=True it kept every row group it had read, the effect of
    apache/arrow#39808), for comparison."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if location.lower().endswith((".csv", ".csv.gz")):
        reader = pacsv.open_csv(location, read_options=pacsv.ReadOptions(block_size=1 << 22))
        for batch in reader:
            yield batch.to_pandas()
        return
    parquet = pq.ParquetFile(location, pre_buffer=False, buffer_size=1 << 20)
    for batch in parquet.iter_batches(batch_size=rows):
        yield batch.to_pandas()


def child(spec: str, uri: str, proposed: bool) -> None:
    """Subprocess: plan the gate once (cold) and report time and memory as one JSON line."""
    from mlflow_gitops.gates import evidence
    from mlflow_gitops.reconcile import make_plan  # noqa: F401  (imports before the first reading)
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry

    quiet_mlflow()

    if proposed:
        evidence.stream_frames = parquetfile_stream_frames
    MlflowRegistry(uri)
    warm_up()
    import sklearn.ensemble  # noqa: F401

    before_kb = status_kb("VmRSS")
    with RssSampler() as sampler:
        result = tool_plan(Path(spec), uri)
    result["rss_before_kb"] = before_kb
    result["peak_rss_kb"] = status_kb("VmHWM")
    result["ru_maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["rss_trace_mb"] = sampler.trace_mb()
    print(json.dumps(result))


READERS = ("dataset (src)", "ParquetFile (before)")


def measure_memory(
    s: Setup, sizes: list[int], readers: tuple[str, ...] = READERS
) -> list[dict[str, Any]]:
    """Each file planned in a fresh process, with the reader as it is in src and with the fix
    it replaced (parquetfile_stream_frames)."""
    out = []
    for rows in sizes:
        data = s.folder / f"big-{rows}.parquet"
        gen_seconds = write_big(data, rows)
        spec = s.folder / f"registry-{rows}.yaml"
        spec.write_text(registry_yaml(data), encoding="utf-8")
        for reader in readers:
            clear_cached(s.uri)
            cmd = [sys.executable, __file__, "--child", str(spec), s.uri]
            started = time.perf_counter()
            done = subprocess.run(
                [*cmd, "--proposed"] if reader != READERS[0] else cmd,
                capture_output=True,
                text=True,
                check=False,
                cwd=Path(__file__).parent,
            )
            wall = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"the plan over {rows:,} rows failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            cached = tool_plan(spec, s.uri)  # the recorded result: only the data digest is read
            result.update(
                file_rows=rows,
                reader=reader,
                file_mb=data.stat().st_size / 2**20,
                generate_seconds=gen_seconds,
                process_seconds=wall,
                replan_seconds=cached["seconds"],
                replan_loads=cached["loads"],
                replan_cached=cached["cached"],
                replan_digest_seconds=cached["breakdown"]["digest"],
            )
            out.append(result)
        data.unlink()
    return out


# --- report ------------------------------------------------------------------------------------


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    pairs = list(zip(r["comparison"]["tool"], r["comparison"]["mlflow"], strict=True))
    tool = median([x["seconds"] for x, _ in pairs])
    theirs = median([y["seconds"] for _, y in pairs])
    cached = median([x["seconds"] for x in r["replan"]])
    verdicts = {x["verdict"] for x in r["comparison"]["tool"]} | {
        x["verdict"] for x in r["comparison"]["mlflow"]
    }
    floor_s = median([x["seconds"] for x in r["comparison"]["floor"]])
    c = r["comparison"]
    with_latency = median([x["seconds"] for x in c["tool_latency"]])
    from_s3 = median([x["seconds"] for x in c["tool_s3"]])
    mem = {(m["file_rows"], m["reader"]): m for m in r["memory"]}
    big_rows, small_rows = max(k[0] for k in mem), min(k[0] for k in mem)

    def growth(m: dict[str, Any]) -> float:
        return float(m["peak_rss_kb"] - m["rss_before_kb"]) / 1024

    memory = {}
    for reader in sorted({k[1] for k in mem}):
        big, small = mem[big_rows, reader], mem[small_rows, reader]
        memory[reader] = {
            "big_peak_mb": big["peak_rss_kb"] / 1024,
            "small_peak_mb": small["peak_rss_kb"] / 1024,
            "peak_ratio": big["peak_rss_kb"] / small["peak_rss_kb"],
            "big_growth_mb": growth(big),
            "small_growth_mb": growth(small),
            "growth_ratio": growth(big) / growth(small) if growth(small) else math.nan,
            "big_eval_seconds": big["seconds"],
        }
    return {
        "tool_seconds": tool,
        "mlflow_seconds": theirs,
        "speedup": theirs / tool,
        "speedup_paired_median": median([y["seconds"] / x["seconds"] for x, y in pairs]),
        "floor_seconds": floor_s,
        "tool_over_floor_seconds": tool - floor_s,
        "mlflow_over_floor_seconds": theirs - floor_s,
        "goal_met": theirs / tool >= GOAL_SPEEDUP,
        "tool_over_floor": tool / floor_s,
        "pass_seconds": median([x["pass_seconds"] for x in c["tool"]]),
        "pass_over_floor": median([x["pass_seconds"] for x in c["tool"]]) / floor_s,
        "load_and_fetch_seconds": median(
            [
                x["breakdown"]["load_models"] + x["breakdown"]["fetch_preprocessors"]
                for x in c["tool"]
            ]
        ),
        "tool_over_floor_paired_median": median(
            [x["seconds"] / f["seconds"] for x, f in zip(c["tool"], c["floor"], strict=True)]
        ),
        "goal_floor": GOAL_FLOOR,
        "goal_floor_met": tool / floor_s <= GOAL_FLOOR,
        "tool_with_latency_seconds": with_latency,
        "latency_gate_extra_seconds": with_latency - tool,
        "latency_p95_ms": c["tool_latency"][0]["latency_p95_ms"],
        "tool_s3_seconds": from_s3,
        "s3_over_local": from_s3 / tool,
        # the random forest adds its trees' predictions in thread order (n_jobs): its rmse moves
        # in the 16th digit between any two runs, local or not; the data read is the same
        "s3_same_numbers": all(
            x["rows"] == c["tool"][0]["rows"]
            and math.isclose(x["candidate_rmse"], c["tool"][0]["candidate_rmse"], rel_tol=1e-12)
            and math.isclose(x["baseline_rmse"], c["tool"][0]["baseline_rmse"], rel_tol=1e-12)
            for x in c["tool_s3"]
        ),
        "same_verdict": len(verdicts) == 1,
        "reverse_verdicts": {k: r["reverse"][k]["verdict"] for k in ("tool", "mlflow")},
        "threshold_cases_agree": all(c["tool"] == c["mlflow"] for c in r["threshold_equivalence"]),
        "verdict": verdicts.pop() if len(verdicts) == 1 else "disagree",
        "replan_seconds": cached,
        "temp_files_left_per_cold_plan": median(
            [len(x["temp_files_left"]) for x in r["comparison"]["tool"]]
        ),
        "replan_loads": max(x["loads"] for x in r["replan"]),
        "replan_cached": all(x["cached"] for x in r["replan"]),
        "big_rows": big_rows,
        "small_rows": small_rows,
        "memory": memory,
        "big_replan_seconds": mem[big_rows, READERS[0]]["replan_seconds"],
    }


def report(r: dict[str, Any]) -> None:
    s = r["summary"]
    first = r["comparison"]["tool"][0], r["comparison"]["mlflow"][0]
    print(
        f"\n{r['data']}: March {first[0]['rows']:,} rows after preparation; candidate v2 "
        f"(random forest) vs baseline v1 (gradient boosting, Production); median of "
        f"{r['repeats']} cold runs each\n"
    )
    rows = []
    for name, runs in (
        ("mlflow-gitops evaluate gate (make_plan)", r["comparison"]["tool"]),
        ("mlflow.models.evaluate x2 + validate", r["comparison"]["mlflow"]),
        ("floor: prepare + transform + 2 predicts", r["comparison"]["floor"]),
        ("tool, evaluate + latency gates", r["comparison"]["tool_latency"]),
        ("tool, data from s3:// (moto)", r["comparison"]["tool_s3"]),
    ):
        seconds = [x["seconds"] for x in runs]
        rows.append(
            [
                name,
                median(seconds),
                min(seconds),
                runs[0]["candidate_rmse"],
                runs[0]["baseline_rmse"],
                runs[0]["verdict"],
            ]
        )
    print(table(["path", "median s", "best s", "rmse v2", "rmse v1", "verdict"], rows))
    print(
        f"\nspeedup {s['speedup']:.1f}x (median of paired runs "
        f"{s['speedup_paired_median']:.1f}x; goal {GOAL_SPEEDUP:.0f}x: "
        f"{'met' if s['goal_met'] else 'NOT met'}); same verdict: {s['same_verdict']}"
    )
    rev = s["reverse_verdicts"]
    print(
        f"the opposite question ({r['reverse']['question']}): tool {rev['tool']}, "
        f"MLflow {rev['mlflow']}"
    )
    cases = r["threshold_equivalence"]
    print(
        f"threshold semantics, equal and one ulp either side of 3 baselines: "
        f"{sum(c['tool'] == c['mlflow'] for c in cases)}/{len(cases)} cases agree; MLflow "
        f"refuses min_absolute_change=0: {cases[0]['mlflow_refuses_zero']}, so it runs with "
        f"{r['mlflow_min_absolute_change']:g}"
    )
    print(
        f"tool / floor {s['tool_over_floor']:.2f}x (paired median "
        f"{s['tool_over_floor_paired_median']:.2f}x; goal {GOAL_FLOOR}x: "
        f"{'met' if s['goal_floor_met'] else 'NOT met'}); the engine's pass alone (no model "
        f"loading, no preprocessor download) {s['pass_seconds']:.2f} s = "
        f"{s['pass_over_floor']:.2f}x the floor; loading both models and fetching both "
        f"preprocessors {s['load_and_fetch_seconds']:.2f} s; the latency gate adds "
        f"{s['latency_gate_extra_seconds']:+.2f} s (p95 ms candidate, baseline: "
        f"{s['latency_p95_ms']}); s3:// / local file {s['s3_over_local']:.2f}x, same numbers: "
        f"{s['s3_same_numbers']}"
    )
    print(
        f"beyond the floor (the predictions themselves): tool "
        f"{s['tool_over_floor_seconds']:.2f} s, MLflow {s['mlflow_over_floor_seconds']:.2f} s"
    )
    print("\nwhere the time goes (first run, seconds)")
    for name, x in zip(("tool", "mlflow"), first, strict=True):
        print(f"  {name:7} {', '.join(f'{k} {v:.2f}' for k, v in x['breakdown'].items())}")
    print(
        f"\nre-plan with the recorded result: {1000 * s['replan_seconds']:.0f} ms median, "
        f"{s['replan_loads']} models loaded, cached: {s['replan_cached']}"
    )
    left = r["comparison"]["tool"][0]["temp_files_left"]
    print(f"files a cold plan leaves in the temp folder: {len(left)} {left}\n")
    mem = [
        [
            f"{m['file_rows']:,}",
            m["reader"],
            m["file_mb"],
            m["rows"],
            m["rss_before_kb"] / 1024,
            m["peak_rss_kb"] / 1024,
            (m["peak_rss_kb"] - m["rss_before_kb"]) / 1024,
            m["seconds"],
            m["breakdown"]["evaluate"],
            m["replan_seconds"],
            m["verdict"],
        ]
        for m in r["memory"]
    ]
    print(
        table(
            [
                "file rows",
                "reader",
                "file MiB",
                "rows evaluated",
                "RSS before MiB",
                "peak RSS MiB",
                "growth MiB",
                "plan s",
                "evaluate s",
                "cached re-plan s",
                "verdict",
            ],
            mem,
        )
    )
    for m in r["memory"]:
        print(
            f"RSS over {m['file_rows']:,} rows ({m['reader']}), largest in each tenth of the run "
            f"(MiB): {', '.join(f'{v:.0f}' for v in m['rss_trace_mb'])}"
        )
    print()
    for reader, m in s["memory"].items():
        print(
            f"{reader}: peak {m['big_peak_mb']:.0f} vs {m['small_peak_mb']:.0f} MiB "
            f"({m['peak_ratio']:.2f}x) for {s['big_rows'] / s['small_rows']:g}x rows; growth "
            f"during the plan {m['big_growth_mb']:.0f} vs {m['small_growth_mb']:.0f} MiB "
            f"({m['growth_ratio']:.2f}x)"
        )


def run_series_only(
    args: argparse.Namespace, size: Sizes, setup: Setup, big: Path, load_before: Any
) -> None:
    """Part 0 alone, its figures written after each data set (a busy machine may not let the
    larger one finish)."""
    doc: dict[str, Any] = {
        "goal_min_speedup": GOAL_SPEEDUP,
        "goal_first_gate_over_floor": GOAL_FIRST_GATE,
        "goal_same_numbers": GOAL_SAME,
        "data": f"real TLC files from {args.data}" if args.data else "generated TLC-shaped",
        "repeats": size.repeats,
        "big_rows": size.big_rows,
        "train_seconds": setup.train_seconds,
        "load_average_start": load_before,
        "summary": {},
    }
    for label, data, repeats in (
        ("march", setup.march, size.repeats),
        (f"{size.big_rows}_rows", big, size.big_repeats),
    ):
        doc[f"series_{label}"] = series(setup, data, repeats, label)
        doc["summary"][label] = summarize_series(doc[f"series_{label}"])
        doc["load_average_end"] = os.getloadavg()
        report_series(label, doc[f"series_{label}"], doc["summary"][label])
        path = write_results("gates-series", doc, args.quick, smoke=args.smoke)
        print(f"wrote {path}", flush=True)


@dataclass(frozen=True)
class Sizes:
    """How much each part measures: the full run, --quick, or --smoke (seconds, no real data)."""

    repeats: int
    big_rows: int
    small_rows: int = SMALL_ROWS
    big_repeats: int = 1
    month_rows: dict[int, int] | None = None  # None: the TLC shapes (MONTH_ROWS)


def sizes(args: argparse.Namespace) -> Sizes:
    if args.smoke:
        return Sizes(1, 6_000, 3_000, month_rows={1: 3_000, 2: 2_000, 3: 2_500})
    repeats = args.repeats or (1 if args.quick else 3)
    big = args.big_rows or (200_000 if args.quick else 2_000_000)
    return Sizes(repeats, big, big_repeats=args.big_repeats or 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat; 200k rows, not 2M")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny generated data, seconds: checks it still runs"
    )
    parser.add_argument("--data", type=Path, help="the real TLC files (green_tripdata_2021-0M)")
    parser.add_argument("--repeats", type=int, default=None, help="cold runs per path (3)")
    parser.add_argument("--big-rows", type=int, default=None, help="rows of the large file (2M)")
    parser.add_argument("--big-repeats", type=int, default=None, help="series on it (1)")
    parser.add_argument(
        "--series-only",
        action="store_true",
        help="only part 0 (the series), written to gates-series.json after each data set",
    )
    parser.add_argument(
        "--compare-readers", action="store_true", help="memory: also the reader src replaced"
    )
    parser.add_argument("--child", nargs=2, metavar=("SPEC", "URI"), help=argparse.SUPPRESS)
    parser.add_argument("--proposed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec, uri = args.child
        child(spec, uri, args.proposed)
        return
    import mlflow  # importing mlflow resets its log level: quiet it afterwards

    quiet_mlflow()
    size = sizes(args)
    started = time.perf_counter()
    load_before = os.getloadavg()
    saved_tempdir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    with tempfile.TemporaryDirectory(prefix="bench-gates-") as tmp_name:
        # every temporary file of this process and its children lands in the folder removed at
        # the end, including those the evidence leaves behind (counted in temp_files_left)
        scratch = Path(tmp_name) / "scratch"
        scratch.mkdir()
        tempfile.tempdir = os.environ["TMPDIR"] = str(scratch)
        setup = build(Path(tmp_name), None if args.smoke else args.data, size.month_rows)
        big = Path(tmp_name) / "series-big.parquet"
        big_seconds = write_big(big, size.big_rows)
        if args.series_only:
            run_series_only(args, size, setup, big, load_before)
            return
        results: dict[str, Any] = {
            "goal_min_speedup": GOAL_SPEEDUP,
            "goal_max_over_floor": GOAL_FLOOR,
            "goal_first_gate_over_floor": GOAL_FIRST_GATE,
            "goal_same_numbers": GOAL_SAME,
            "data": f"real TLC files from {args.data}"
            if args.data and not args.smoke
            else "generated TLC-shaped",
            "month_rows": size.month_rows or MONTH_ROWS,
            "repeats": size.repeats,
            "train_seconds": setup.train_seconds,
            "mlflow_min_absolute_change": MLFLOW_MIN_CHANGE,
            "series_march": series(setup, setup.march, size.repeats, "march"),
            "series_big": series(setup, big, size.big_repeats, "big"),
            "series_big_generate_seconds": big_seconds,
            "comparison": compare_with_bucket(setup, size.repeats),
            "replan": replan(setup, max(3, size.repeats)),
            "reverse": reverse(setup),
            "threshold_equivalence": threshold_equivalence(),
            # one child process per file and reader (each imports MLflow and scikit-learn);
            # the reader src replaced is measured again only with --compare-readers
            "memory": measure_memory(setup, [size.small_rows], READERS[:1])
            if args.smoke
            else measure_memory(
                setup,
                [size.big_rows, size.small_rows],
                READERS if args.compare_readers else READERS[:1],
            ),
        }
        with contextlib.suppress(Exception):
            mlflow.end_run()
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
    results["load_average"] = {"start": load_before, "end": os.getloadavg()}
    results["summary"] = summarize(results)
    results["summary"]["series"] = {
        "march": summarize_series(results["series_march"]),
        f"{size.big_rows}_rows": summarize_series(results["series_big"]),
    }
    results["total_seconds"] = time.perf_counter() - started
    report(results)
    report_series("March", results["series_march"], results["summary"]["series"]["march"])
    report_series(
        f"{size.big_rows:,} generated rows",
        results["series_big"],
        results["summary"]["series"][f"{size.big_rows}_rows"],
    )
    load = results["load_average"]
    print(
        f"\nwhole benchmark {results['total_seconds']:.0f} s on {os.cpu_count()} CPUs; "
        f"1-min load average {load['start'][0]:.1f} at the start, {load['end'][0]:.1f} at the end"
    )
    path = write_results("gates", results, args.quick, smoke=args.smoke)
    print(f"wrote {path}")


if __name__ == "__main__":
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    main()
