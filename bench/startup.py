"""How long the offline commands take from a cold interpreter, and proof that they never import
mlflow.

    .venv/bin/python bench/startup.py [--quick]

Times `mlflow-gitops --help`, `schema` and `validate` (a generated registry.yaml of 1,000 models,
5 versions each, with tags and aliases), median of 10 runs each, interpreter start included. Then
runs each command under `python -X importtime` and lists any `mlflow` module it loaded.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import (
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
# the loader as if PyYAML had no libyaml (pure-Python parser): what libyaml saves on validate
PURE_PYTHON_VALIDATE = (
    "import sys, yaml; yaml.CSafeLoader = yaml.SafeLoader; yaml.__with_libyaml__ = False; "
    "from mlflow_gitops.cli import main; main(sys.argv[1:])"
)


def commands(registry: Path) -> list[tuple[str, list[str], list[str]]]:
    """(label, command to time, `python -X importtime -m mlflow_gitops` arguments)."""
    return [
        ("mlflow-gitops --help", [GITOPS, "--help"], ["--help"]),
        ("mlflow-gitops schema", [GITOPS, "schema"], ["schema"]),
        (
            "mlflow-gitops validate registry.yaml",
            [GITOPS, "validate", str(registry)],
            ["validate", str(registry)],
        ),
    ]


def references(registry: Path) -> list[tuple[str, list[str]]]:
    return [
        ("python -c pass (interpreter start)", [PY, "-c", "pass"]),
        ("python -c 'import mlflow' (for scale)", [PY, "-c", "import mlflow"]),
        (
            "validate, PyYAML without libyaml (for scale)",
            [PY, "-c", PURE_PYTHON_VALIDATE, "validate", str(registry)],
        ),
    ]


def time_command(cmd: list[str], runs: int, warm: bool = True) -> dict[str, Any]:
    if warm:  # warm the page cache: every run below starts the same way
        timed_subprocess(cmd)
    times, last = [], None
    for _ in range(runs):
        seconds, last = timed_subprocess(cmd)
        times.append(seconds)
    assert last is not None
    return {
        "runs_s": times,
        "median_s": median(times),
        "min_s": min(times),
        "exit_code": last.returncode,
        "stdout_head": last.stdout.strip().splitlines()[:1],
    }


def imported_modules(args: list[str]) -> dict[str, Any]:
    """Every module `python -X importtime -m mlflow_gitops ARGS` loads; the mlflow ones listed."""
    _, done = timed_subprocess([PY, "-X", "importtime", "-m", "mlflow_gitops", *args])
    modules: list[tuple[str, int]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        modules.append((name.strip(), int(cumulative)))
    names = [n for n, _ in modules]
    mlflow = sorted(n for n in names if n == "mlflow" or n.startswith("mlflow."))
    top = sorted(
        ((n, us) for n, us in modules if "." not in n and not n.startswith("_")),
        key=lambda item: -item[1],
    )[:6]
    return {
        "exit_code": done.returncode,
        "modules": len(names),
        "mlflow_modules": mlflow,
        "heaviest_top_level_ms": {n: round(us / 1000, 1) for n, us in top},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs each instead of 10")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    runs = 1 if args.smoke else 3 if args.quick else 10
    n_models, n_versions = (20, 5) if args.smoke else (1000, 5)
    results: dict[str, Any] = {
        "runs_per_command": runs,
        "registry": {"models": n_models, "versions_per_model": n_versions},
        "commands": {},
        "references": {},
        "imports": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        registry = Path(tmp) / "registry.yaml"
        registry.write_text(registry_yaml(synthetic_models(n_models, n_versions)), encoding="utf-8")
        results["registry"]["bytes"] = registry.stat().st_size
        for label, cmd, module_args in commands(registry):
            print(f"timing {label} ...", flush=True)
            results["commands"][label] = time_command(cmd, runs, warm=not args.smoke)
            results["imports"][label] = imported_modules(module_args)
        for label, cmd in references(registry):
            print(f"timing {label} ...", flush=True)
            results["references"][label] = time_command(cmd, runs, warm=not args.smoke)

    report(results)
    path = write_results("startup", results, args.quick, smoke=args.smoke)
    print(f"\nwrote {path}")


def report(r: dict[str, Any]) -> None:
    reg = r["registry"]
    print(
        f"\nregistry.yaml: {reg['models']:,} models x {reg['versions_per_model']} versions "
        f"({reg['bytes']:,} bytes); median of {r['runs_per_command']} runs, interpreter start "
        "included\n"
    )
    rows = []
    for label, t in r["commands"].items():
        imports = r["imports"][label]
        mlflow = imports["mlflow_modules"]
        rows.append(
            [
                label,
                t["median_s"],
                t["min_s"],
                t["exit_code"],
                imports["modules"],
                "none" if not mlflow else f"{len(mlflow)} ({', '.join(mlflow[:3])} ...)",
            ]
        )
    for label, t in r["references"].items():
        rows.append([label, t["median_s"], t["min_s"], t["exit_code"], "", ""])
    print(table(["command", "median s", "min s", "exit", "modules", "mlflow modules"], rows))
    clean = all(not i["mlflow_modules"] for i in r["imports"].values())
    r["mlflow_imported"] = not clean
    print(
        "\nmlflow imported on the --help, schema and validate paths: "
        + (
            "no (python -X importtime -m mlflow_gitops ... lists no mlflow.* module)"
            if clean
            else "YES"
        )
    )
    for label, imports in r["imports"].items():
        heaviest = ", ".join(f"{n} {ms} ms" for n, ms in imports["heaviest_top_level_ms"].items())
        print(f"  {label}: heaviest imports {heaviest}")


if __name__ == "__main__":
    sys.exit(main())
