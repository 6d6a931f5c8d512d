"""Load registry files in a child process under resource limits; one JSON line per file.

The bound on time and memory is a limit, not a stopwatch: the child runs with an address-space
limit (RLIMIT_AS) and each file gets a CPU-time budget (ITIMER_PROF). A file that needs more is
reported as `cpu_limit` or `memory_limit`, and one that kills the child is reported by the parent.

Run it by hand for the figures in docs/reliability.md:

    .venv/bin/python -m tests.reliability.load_worker --report   # the corpus, per file
    .venv/bin/python -m tests.reliability.load_worker --scale    # CPU and memory by file size
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

NOW = datetime(2026, 11, 27, tzinfo=UTC)  # the one clock of these plans

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 1 << 30  # bytes of address space for the whole child (Python itself needs ~300 MB)
CPU_PER_FILE = float(os.environ.get("RELIABILITY_CPU_PER_FILE", "8"))  # seconds of CPU per file
CHILD_TIMEOUT = 600.0  # wall-clock backstop for one child process


class CpuLimit(BaseException):
    """The file used up its CPU budget (BaseException: no `except Exception` may swallow it)."""


def _on_cpu_limit(signum: int, frame: object) -> None:
    raise CpuLimit


def _load_one(file: str, stage: str) -> dict[str, Any]:
    from mlflow_gitops.errors import SpecError
    from mlflow_gitops.reconcile import make_plan
    from mlflow_gitops.spec.load import load
    from tests.reliability.corpus_cases import standard_registry

    fake = standard_registry()
    out: dict[str, Any] = {"file": file, "issues": [], "rendered": "", "detail": ""}
    start = time.process_time()
    signal.setitimer(signal.ITIMER_PROF, CPU_PER_FILE)
    try:
        loaded = load(file)
        if stage == "plan":
            make_plan(loaded, fake, None, NOW)
        out["outcome"] = "accepted"
    except SpecError as exc:
        out["outcome"] = "spec_error"
        out["rendered"] = exc.render()
        out["issues"] = [
            {"line": i.line, "column": i.column, "path": i.path, "message": i.message}
            for i in exc.issues
        ]
    except CpuLimit:
        out["outcome"] = "cpu_limit"
    except MemoryError:
        out["outcome"] = "memory_limit"
    except BaseException as exc:  # any other exception is a bug: report it, go on
        out["outcome"] = "crash"
        out["detail"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
    out["cpu_seconds"] = round(time.process_time() - start, 3)
    out["writes"] = fake.writes
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    out["imported_mlflow"] = "mlflow" in sys.modules
    return out


def child_main() -> None:
    """Read jobs ([file, stage] pairs) from stdin; print `start` and a result line for each."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    signal.signal(signal.SIGPROF, _on_cpu_limit)
    jobs = json.loads(sys.stdin.read())
    import mlflow_gitops.reconcile
    import mlflow_gitops.spec.load  # noqa: F401

    for file, stage in jobs:
        print(json.dumps({"start": file}), flush=True)
        print(json.dumps(_load_one(file, stage)), flush=True)


def run_limited(jobs: Iterable[tuple[str, str]], alone: Iterable[str] = ()) -> dict[str, Any]:
    """Load every (file, stage) in child processes, two at a time: the files named in `alone`
    each in a child of their own, the others together."""
    jobs = list(jobs)
    solo = set(alone)
    groups = [[j] for j in jobs if j[0] in solo] + [[j for j in jobs if j[0] not in solo]]
    results: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for part in pool.map(_run_group, [g for g in groups if g]):
            results.update(part)
    return results


def _run_group(jobs: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """One child after another until every job has a result; a file that kills its child is
    reported as `killed` and the next child carries on with the rest."""
    pending = list(jobs)
    results: dict[str, dict[str, Any]] = {}
    # the tests' package first, then whatever source the parent was told to use (a worktree)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    while pending:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.reliability.load_worker", "--child"],
            input=json.dumps(pending), capture_output=True, text=True, cwd=ROOT, env=env,
            timeout=CHILD_TIMEOUT, check=False,
        )  # fmt: skip
        started = None
        for line in proc.stdout.splitlines():
            record = json.loads(line)
            if "start" in record:
                started = record["start"]
            else:
                results[record["file"]] = record
                started = None
        if started is None and proc.returncode != 0:
            raise RuntimeError(f"the loader child failed: {proc.stderr[-2000:]}")
        if started is not None:
            results[started] = {
                "file": started,
                "outcome": "killed",
                "detail": f"exit {proc.returncode}: {proc.stderr[-500:]}",
                "issues": [],
                "rendered": "",
                "writes": 0,
            }
        pending = [(f, s) for f, s in pending if f not in results]
    return results


def _scale() -> None:
    """Load generated files of growing size, each in a fresh child (its own peak RSS), with a
    CPU budget of 300 s, to show how time and memory grow up to the size cap."""
    os.environ["RELIABILITY_CPU_PER_FILE"] = "300"
    shapes = {
        "models (block style)": lambda i: (
            f"  model-{i:07d}:\n    tags: {{team: rides}}\n"
            "    versions:\n      - {version: 1, stage: Production}\n"
        ),
        "tiny flow nodes": lambda i: "1," if i else "  x: [1,",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for shape, piece in shapes.items():
            for size in (250_000, 1_000_000, 4_000_000):
                path = Path(tmp) / f"scale-{size}.yaml"
                parts, written, i = ["version: 1\nmodels:\n"], 0, 0
                while written < size:
                    parts.append(piece(i))
                    written += len(parts[-1])
                    i += 1
                parts.append("1]\n" if shape == "tiny flow nodes" else "  bad: {colour: red}\n")
                path.write_text("".join(parts), encoding="utf-8")
                r = run_limited([(str(path), "load")])[str(path)]
                print(
                    f"{shape:<22} {size / 1e6:5.3f} MB  {r['outcome']:<11} "
                    f"{r.get('cpu_seconds', '?'):>7} s CPU  peak RSS {r.get('peak_rss_mb', '?')} MB"
                )


def _report() -> None:
    from tests.reliability.corpus_cases import all_cases, runs_alone

    with tempfile.TemporaryDirectory() as tmp:
        cases = all_cases()
        files = {str(c.materialize(Path(tmp))): c for c in cases}
        alone = [f for f in files if runs_alone(Path(f).name)]
        results = run_limited(((f, c.stage) for f, c in files.items()), alone)
    outcomes: dict[str, int] = {}
    for record in results.values():
        outcomes[record["outcome"]] = outcomes.get(record["outcome"], 0) + 1
    slowest = sorted(results.values(), key=lambda r: -float(r.get("cpu_seconds", 0)))[:6]
    print(f"{len(results)} files: {outcomes}")
    print(f"peak RSS of a child: {max(r.get('peak_rss_mb', 0) for r in results.values())} MB")
    for r in slowest:
        print(f"  {r.get('cpu_seconds', '?'):>7} s CPU  {r['outcome']:<11} {Path(r['file']).name}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        child_main()
    elif "--scale" in sys.argv:
        _scale()
    else:
        _report()
