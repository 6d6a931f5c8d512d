"""A plan of 500 Unity Catalog models against the fake of UC's API (tests/uc/fake_uc.py) with
50 ms of latency on every call, as a cloud API answers: the tool's concurrent read against the
same read one model at a time, in one run.

    .venv/bin/python bench/uc_plan.py [--models N] [--versions V] [--latency-ms L] [--quick | --smoke]

UC's model search takes no filter and its version search one condition, and MLflow's UC client
returns searched versions without tags: each declared model costs get_registered_model, one
`name = '...'` version search and one get_model_version per version (2 + V calls), whatever the
number of models. The figures: wall time of the plan (read + planner, in this process, through
MLflow's unmodified `databricks-uc` client), calls per model as the adapter counts them and as the
fake records them, and the ratio to the sequential read. Goal: 500 models under 10 s.
--smoke: 10 models, 5 ms, seconds.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import SMOKE_HELP, quiet_mlflow, table, write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fake lives beside the tests

from tests.uc.adapter import open_uc_adapter  # noqa: E402
from tests.uc.fake_uc import FakeWorkspace, Metastore, StorageCredentials  # noqa: E402

GOAL_S = 10.0
NOW = datetime.now(UTC)
USER = "bench@example.com"
TOKEN = "dapibenchtoken"  # the fake's own, never a real credential


def registry_yaml(names: list[str], versions: int) -> str:
    """The file a user would keep for these models: one alias and one tag each (plan empty)."""
    lines = ["version: 1", "models:"]
    for name in names:
        lines += [
            f"  {name}:",
            "    tags: {team: rides}",
            f"    aliases: {{champion: {versions}}}",
        ]
    return "\n".join(lines) + "\n"


def answer_at_once(workspace: FakeWorkspace) -> None:
    """TCP_NODELAY on the fake's connections. Python's http.server sends a keep-alive answer's
    headers and body in two writes, and Nagle holds the body until the client acknowledges the
    headers, which Linux delays by 40 ms: on loopback that artefact alone cost 45 ms a call,
    more than a cloud API's round trip. Only the injected latency should be measured."""
    handler = workspace._server.RequestHandlerClass

    class NoDelay(handler):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    workspace._server.RequestHandlerClass = NoDelay


def one_plan(workspace: FakeWorkspace, spec_path: Path, threads: int) -> dict[str, Any]:
    """One plan of the file through a fresh adapter, `threads` models read at once."""
    from mlflow_gitops.reconcile.planning import make_plan
    from mlflow_gitops.spec.load import load

    os.environ["MLFLOW_GITOPS_UC_READ_THREADS"] = str(threads)
    adapter = open_uc_adapter("databricks://bench", "databricks-uc://bench")
    loaded = load(spec_path)
    mark = workspace.mark()
    started = time.perf_counter()
    planned = make_plan(loaded, adapter, None, NOW)
    seconds = time.perf_counter() - started
    recorded = len(workspace.since(mark))
    return {
        "threads": threads,
        "seconds": round(seconds, 3),
        "adapter_calls": adapter.calls,
        "recorded_requests": recorded,
        "changes": len(planned.plan.changes),
        "models_read": len(planned.observed.models),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--versions", type=int, default=2, help="versions per model")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--threads", type=int, default=16, help="the tool's bound")
    parser.add_argument("--quick", action="store_true", help="100 models")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        args.models, args.latency_ms = 10, 5.0
    elif args.quick:
        args.models = 100
    quiet_mlflow()
    work = Path(tempfile.mkdtemp(prefix="mlflow-gitops-uc-plan-"))
    storage = StorageCredentials(bucket="unused", access_key_id="x", secret_access_key="x")
    metastore = Metastore(storage)
    names = metastore.seed(
        [f"bench.ml.model_{i:04d}" for i in range(args.models)],
        owner=USER,
        versions=args.versions,
        aliases={"champion": args.versions},
        tags={"team": "rides"},
    )
    spec_path = work / "registry.yaml"
    spec_path.write_text(registry_yaml(names, args.versions), encoding="utf-8")
    workspace = FakeWorkspace(
        metastore, {TOKEN: USER}, name="bench", latency_s=args.latency_ms / 1000
    )
    answer_at_once(workspace)
    with workspace:
        config = work / "databrickscfg"
        config.write_text(f"[bench]\nhost = {workspace.url}\ntoken = {TOKEN}\n")
        config.chmod(0o600)
        os.environ["DATABRICKS_CONFIG_FILE"] = str(config)
        for key in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE"):
            os.environ.pop(key, None)
        one_plan(workspace, spec_path, args.threads)  # warm-up: imports, the first connection
        tool = one_plan(workspace, spec_path, args.threads)
        sequential = one_plan(workspace, spec_path, 1)
    per_model = tool["adapter_calls"] / args.models
    ratio = sequential["seconds"] / tool["seconds"] if tool["seconds"] else 0.0
    print(
        f"a plan of {args.models} Unity Catalog models ({args.versions} versions each), "
        f"{args.latency_ms:g} ms per call, through MLflow's databricks-uc client\n"
    )
    print(
        table(
            ["read", "threads", "seconds", "calls", "calls/model", "requests seen", "changes"],
            [
                [
                    name,
                    r["threads"],
                    r["seconds"],
                    r["adapter_calls"],
                    r["adapter_calls"] / args.models,
                    r["recorded_requests"],
                    r["changes"],
                ]
                for name, r in (
                    ("concurrent (the tool)", tool),
                    ("one model at a time", sequential),
                )
            ],
        )
    )
    met = tool["seconds"] < GOAL_S
    print(
        f"\ncalls per model: {per_model:g} (2 + {args.versions} versions); "
        f"{ratio:.1f}x faster than one model at a time; goal < {GOAL_S:g} s for 500 models: "
        + ("met" if met else "NOT met")
    )
    path = write_results(
        "uc_plan",
        {
            "models": args.models,
            "versions_per_model": args.versions,
            "latency_ms": args.latency_ms,
            "calls_per_model": per_model,
            "calls_per_model_formula": "2 + versions",
            "concurrent": tool,
            "sequential": sequential,
            "speedup": round(ratio, 2),
            "goal_seconds": GOAL_S,
            "goal_met": met,
        },
        args.quick,
        args.smoke,
    )
    print(f"figures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
