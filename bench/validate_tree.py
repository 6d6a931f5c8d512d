"""`mlflow-gitops validate` of an organization's tree: 10,000 models x 5 versions in 200 files
(half of them in a `prod` registry) included by one root registry.yaml, against the baseline of
one file of 1,000 models. Wall time of the command as a subprocess, interpreter start included,
median of 3 runs after a warm-up; then where the time goes, measured stage by stage in one
process.

    .venv/bin/python bench/validate_tree.py [--quick]

Goal (issue 11): under 3 s on this machine for the tree.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import (
    BENCH,
    GITOPS,
    SMOKE_HELP,
    median,
    registry_yaml,
    synthetic_models,
    table,
    timed_subprocess,
    write_results,
)

PY = sys.executable
SRC = str(BENCH.parent / "src")  # measure this checkout, not whichever one the venv installed
ENV = {**os.environ, "PYTHONPATH": SRC}
RUNS = 3
# the same command, with the event builder switched off: the node walker reads every file
NODE_WALKER = (
    "import sys\n"
    "from mlflow_gitops.spec import load\n"
    "def off(text):\n"
    "    raise load._Unusual\n"
    "load._build_from_events = off\n"
    "from mlflow_gitops.cli import main\n"
    "main(sys.argv[1:])\n"
)
STAGES = """
import json, sys, time
started = time.perf_counter()
from mlflow_gitops.cli import app  # what `validate` imports before reading
from mlflow_gitops.spec import check, load, tree
imported = time.perf_counter()
spent = {"parse": 0.0, "schema": 0.0, "check": 0.0}
def timed(name, fn):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - t
    return wrapper
load.parse_yaml = timed("parse", load.parse_yaml)
load.validate_data = timed("schema", load.validate_data)
tree.check = timed("check", tree.check)
t = time.perf_counter()
loaded = tree.load_tree(sys.argv[1])
total = time.perf_counter() - t
print(json.dumps({
    "imports_s": imported - started,
    "parse_s": spent["parse"],
    "schema_s": spent["schema"],
    "checks_s": spent["check"],
    "tree_rest_s": total - sum(spent.values()),
    "load_tree_s": total,
    "models": len(loaded.models),
}))
"""


def write_tree(folder: Path, n_models: int, n_files: int, n_versions: int) -> Path:
    """teams/team-NNN/{dev,prod}.yaml, n_models / n_files models each; a root that includes them
    and declares the two registries."""
    per_file = n_models // n_files
    for i in range(n_files):
        team, registry = f"team-{i // 2:03d}", ("dev", "prod")[i % 2]
        models = synthetic_models(per_file, n_versions, prefix=f"{team}-{registry}-model")
        text = registry_yaml(models).replace(
            "version: 1\n", f"version: 1\nregistry: {registry}\n", 1
        )
        path = folder / "teams" / team / f"{registry}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    root = folder / "registry.yaml"
    root.write_text(
        "version: 1\n"
        "registries:\n"
        "  dev: {tracking_uri_env: DEV_MLFLOW_TRACKING_URI}\n"
        "  prod: {tracking_uri_env: PROD_MLFLOW_TRACKING_URI, token_env: PROD_TOKEN}\n"
        "default_registry: dev\n"
        "include:\n"
        "  - teams/*/*.yaml\n",
        encoding="utf-8",
    )
    return root


def time_command(cmd: list[str], runs: int = RUNS) -> dict[str, Any]:
    timed_subprocess(cmd, env=ENV)  # warm the page cache: every run below starts the same way
    times, last = [], None
    for _ in range(runs):
        seconds, last = timed_subprocess(cmd, env=ENV)
        times.append(seconds)
    assert last is not None
    if last.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{last.stdout}{last.stderr}")
    return {
        "runs_s": times,
        "median_s": median(times),
        "min_s": min(times),
        "stdout": last.stdout.strip(),
    }


def stages(root: Path) -> dict[str, Any]:
    done = subprocess.run(
        [PY, "-c", STAGES, str(root)], capture_output=True, text=True, check=True, env=ENV
    )
    return dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 models in 20 files")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    quick, smoke = args.quick, args.smoke
    n_models, n_files = (40, 4) if smoke else (1_000, 20) if quick else (10_000, 200)
    runs = 1 if smoke else RUNS
    single_models = 40 if smoke else 1_000
    with tempfile.TemporaryDirectory(prefix="bench-validate-tree-") as tmp:
        folder = Path(tmp)
        root = write_tree(folder / "tree", n_models, n_files, 5)
        single = folder / "single" / "registry.yaml"
        single.parent.mkdir()
        single.write_text(registry_yaml(synthetic_models(single_models, 5)), encoding="utf-8")
        tree_bytes = sum(p.stat().st_size for p in (folder / "tree").rglob("*.yaml"))
        rows = [
            ("interpreter start: python -c pass", [PY, "-c", "pass"]),
            (
                f"validate, 1 file of {single_models:,} models (baseline)",
                [GITOPS, "validate", str(single)],
            ),
            (
                f"validate, tree: {n_models:,} models in {n_files} files + root",
                [GITOPS, "validate", str(root)],
            ),
            (
                "for scale: the tree through the node walker only (the loader before)",
                [PY, "-c", NODE_WALKER, "validate", str(root)],
            ),
        ]
        results = {label: time_command(cmd, runs) for label, cmd in rows}
        breakdown = stages(root)
    print(
        table(
            ["command", "median s", "min s"],
            [(label, r["median_s"], r["min_s"]) for label, r in results.items()],
        )
    )
    print()
    print(table(["stage (in one process)", "s"], [(k, v) for k, v in breakdown.items()]))
    tree_label = rows[2][0]
    median_s = results[tree_label]["median_s"]
    print(f"\ngoal: under 3 s for the tree; measured {median_s:.2f} s")
    path = write_results(
        "validate_tree",
        {
            "models": n_models,
            "files": n_files + 1,
            "versions_per_model": 5,
            "tree_yaml_bytes": tree_bytes,
            "runs": runs,
            "commands": results,
            "stages_in_process": breakdown,
            "goal_s": 3.0,
            "goal_met": median_s < 3.0,
        },
        quick,
        smoke=smoke,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
