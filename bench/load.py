"""Load: `plan` over 20,000 versions and `apply` of 1,000 changes against a PostgreSQL-backed
`mlflow server`, each run as its own process: wall time, peak RSS and REST calls.

    .venv/bin/python bench/load.py [--quick] [--models N] [--versions N] [--parallelism N]

1,000 models x 20 versions (--quick: 200 x 20) are written straight into a fresh PostgreSQL
database (`mlflow_gitops_load_<random>` on 127.0.0.1:5432, dropped at the end) with MLflow's own
SQLAlchemy models, then an `mlflow server` on a loopback port serves it. registry.yaml manages every
model and declares every version as it is, except version 11 of each model, moved from None to
Archived: one stage transition per model, 1,000 changes in all. Measured, each a subprocess of
`mlflow-gitops` (run through a thin wrapper that counts the HTTP requests it makes):

  plan   the registry.yaml above, --format json (reads all 20,000 versions, shows 1,000 changes)
  apply  the same file, then a second plan that must be empty

Peak RSS is the child's VmHWM (/proc/self/status), read by the child as the CLI returns.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    SMOKE_HELP,
    MlflowServer,
    create_schema,
    postgres_available,
    postgres_database,
    quiet_mlflow,
    registry_yaml,
    synthetic_models,
    table,
    write_registry,
    write_results,
)

MOVED_VERSION = 11  # None in synthetic_models(n, 20); declared Archived: one transition per model


def child(out: Path, argv: list[str]) -> int:
    """Run the CLI in this process with every requests.Session request counted."""
    from _common import HttpCounter

    from mlflow_gitops.cli import main as cli

    code: Any = 0
    with HttpCounter() as http:
        try:
            cli(argv)
        except SystemExit as exc:
            code = exc.code
        except Exception as exc:  # reported; the parent decides
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
            code = 99
    if code is None:
        code = 0
    status = Path("/proc/self/status").read_text()
    hwm_kib = next(
        int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")
    )
    doc = {"http_requests": http.count, "by_path": http.by_path(), "vm_hwm_kib": hwm_kib}
    out.write_text(json.dumps(doc), encoding="utf-8")
    return code if isinstance(code, int) else 1


def measure(argv: list[str], workdir: Path, label: str) -> dict[str, Any]:
    """One CLI run as a child process: wall seconds, peak RSS (MiB), exit code, REST calls."""
    counts = workdir / f"{label}.counts.json"
    stdout = workdir / f"{label}.stdout"
    stderr = workdir / f"{label}.stderr"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(counts), "--", *argv]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    with stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=workdir)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    calls = json.loads(counts.read_text()) if counts.exists() else {}
    return {
        "command": "mlflow-gitops " + " ".join(argv),
        "exit_code": proc.returncode,
        "wall_s": round(wall, 3),
        # VmHWM read by the child itself as it ends: ru_maxrss from wait4 would also count the
        # bench's own RSS (Linux carries the forking parent's high-water mark across exec)
        "peak_rss_mib": round(calls["vm_hwm_kib"] / 1024, 1) if calls else None,
        "ru_maxrss_mib_incl_fork_parent": round(usage.ru_maxrss / 1024, 1),
        "http_requests": calls.get("http_requests"),
        "http_by_path": calls.get("by_path"),
        "stdout": stdout.read_text(errors="replace"),
        "stderr_tail": "\n".join(stderr.read_text(errors="replace").splitlines()[-10:]),
    }


def count_changes(plan_json: str) -> int | None:
    try:
        doc = json.loads(plan_json)
    except ValueError:
        return None
    for key in ("changes", "steps"):
        if isinstance(doc.get(key), list):
            return len(doc[key])
    return None


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child(Path(sys.argv[2]), sys.argv[4:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 models x 20 versions")
    parser.add_argument("--models", type=int, default=None)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--parallelism", type=int, default=4, help="apply --parallelism")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if not postgres_available():
        print("PostgreSQL is not listening on 127.0.0.1:5432", file=sys.stderr)
        return 2
    quiet_mlflow()
    n_models = args.models or (5 if args.smoke else 200 if args.quick else 1000)
    rows = synthetic_models(n_models, args.versions, prefix="load-model")
    moved = {(m.name, MOVED_VERSION): "Archived" for m in rows}
    db_name = f"mlflow_gitops_load_{secrets.token_hex(4)}"
    results: dict[str, Any] = {
        "models": n_models,
        "versions_per_model": args.versions,
        "versions": n_models * args.versions,
        "changes_declared": len(moved),
        "backend": "postgresql (127.0.0.1:5432), mlflow server uvicorn --workers 1",
        "apply_parallelism": args.parallelism,
    }
    with (
        tempfile.TemporaryDirectory(prefix="bench-load-") as tmp_name,
        postgres_database(db_name) as db_uri,
    ):
        tmp = Path(tmp_name)
        started = time.perf_counter()
        create_schema(db_uri)
        results["schema_s"] = round(time.perf_counter() - started, 2)
        results["populate_s"] = round(write_registry(db_uri, rows), 2)
        file = tmp / "registry.yaml"
        file.write_text(registry_yaml(rows, moved), encoding="utf-8")
        results["registry_yaml_bytes"] = file.stat().st_size
        print(
            f"{db_name}: {n_models} models x {args.versions} versions written in "
            f"{results['populate_s']} s; registry.yaml {results['registry_yaml_bytes']:,} bytes",
            flush=True,
        )
        with MlflowServer(db_uri, tmp) as server:
            uri = ["--tracking-uri", server.url]
            plan = measure(["plan", str(file), "-f", "json", *uri], tmp, "plan")
            plan["changes"] = count_changes(plan.pop("stdout"))
            print(f"plan: {plan['wall_s']} s, {plan['peak_rss_mib']} MiB", flush=True)
            apply = measure(
                [
                    *("apply", str(file), "-f", "json", "--parallelism", str(args.parallelism)),
                    *("--commit", "0" * 40, "--actor", "bench", *uri),
                ],
                tmp,
                "apply",
            )
            apply_out = apply.pop("stdout")
            apply["output_tail"] = apply_out[-600:]
            apply["summary"] = _apply_summary(apply_out)
            print(f"apply: {apply['wall_s']} s, {apply['peak_rss_mib']} MiB", flush=True)
            after = measure(["plan", str(file), "-f", "json", *uri], tmp, "plan_after")
            after["changes"] = count_changes(after.pop("stdout"))
        results.update({"plan": plan, "apply": apply, "plan_after_apply": after})
    results["database_dropped"] = db_name
    report(results)
    # the committed file says "quick" itself
    path = write_results("load", results, quick=False, smoke=args.smoke)
    if (args.quick or args.models) and not args.smoke:
        doc = json.loads(path.read_text())
        doc["quick"] = bool(args.quick or n_models < 1000)
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
    return 0 if plan["exit_code"] in (0, 2) and apply["exit_code"] == 0 else 1


def _apply_summary(out: str) -> dict[str, Any]:
    try:
        doc = json.loads(out)
    except ValueError:
        return {}
    steps = doc.get("steps") if isinstance(doc, dict) else None
    if not isinstance(steps, list):
        return {k: v for k, v in doc.items() if not isinstance(v, list | dict)}
    by_status: dict[str, int] = {}
    for s in steps:
        status = str(s.get("status")) if isinstance(s, dict) else "?"
        by_status[status] = by_status.get(status, 0) + 1
    return {"steps": len(steps), "by_status": by_status}


def report(r: dict[str, Any]) -> None:
    plan, apply, after = r["plan"], r["apply"], r["plan_after_apply"]
    applied = apply["summary"].get("by_status", {}).get("applied", apply["summary"].get("steps"))
    print(
        f"\n{r['models']:,} models x {r['versions_per_model']} versions = {r['versions']:,} "
        f"versions on PostgreSQL; {r['changes_declared']:,} stage transitions declared\n"
    )
    print(
        table(
            ["run", "exit", "wall s", "peak RSS MiB", "REST calls", "changes"],
            [
                ["plan", plan["exit_code"], plan["wall_s"], plan["peak_rss_mib"],
                 plan["http_requests"], plan["changes"]],
                ["apply", apply["exit_code"], apply["wall_s"], apply["peak_rss_mib"],
                 apply["http_requests"], f"{applied} applied"],
                ["plan after apply", after["exit_code"], after["wall_s"], after["peak_rss_mib"],
                 after["http_requests"], after["changes"]],
            ],
        )
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
