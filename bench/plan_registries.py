"""`plan` of a tree over two registries (dev: `mlflow server` on SQLite, prod: on PostgreSQL),
each holding 10,000 versions: REST calls per registry, and wall time when the two are read
concurrently (one thread each, as `plan` does) against one after the other.

    .venv/bin/python bench/plan_registries.py [--quick] [--repeats N]

Each registry (500 models x 20 versions by default) is written straight into its database with
MLflow's own SQLAlchemy models before its server starts. The tree is the root registry.yaml,
teams/dev.yaml (registry: dev) and teams/prod.yaml (registry: prod), every model and version
declared as the registries hold them, so the plan is empty: the figure is the read.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _common import (
    SMOKE_HELP,
    MlflowServer,
    create_schema,
    median,
    postgres_available,
    postgres_database,
    quiet_mlflow,
    registry_yaml,
    synthetic_models,
    table,
    write_registry,
    write_results,
)


class HostCounter:
    """Counts the real HTTP requests per server (host:port) made through requests.Session."""

    def __init__(self) -> None:
        self.by_host: Counter[str] = Counter()
        self.spans: list[tuple[str, float, float]] = []  # (host, start, end) of each request
        self._lock = threading.Lock()
        self._original: Any = None

    def __enter__(self) -> HostCounter:
        import requests

        original = requests.Session.request
        counter = self

        def request(session: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            host = urlsplit(url).netloc
            started = time.perf_counter()
            try:
                return original(session, method, url, *args, **kwargs)
            finally:
                with counter._lock:
                    counter.by_host[host] += 1
                    counter.spans.append((host, started, time.perf_counter()))

        self._original = original
        requests.Session.request = request  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        import requests

        requests.Session.request = self._original  # type: ignore[method-assign]

    def overlap_s(self) -> float:
        """How long requests to two different servers were in flight at the same time."""
        total = 0.0
        for i, (host_a, a0, a1) in enumerate(self.spans):
            for host_b, b0, b1 in self.spans[i + 1 :]:
                if host_a != host_b:
                    total += max(0.0, min(a1, b1) - max(a0, b0))
        return total


def write_tree(folder: Path, dev: str, prod: str, models_yaml: str) -> Path:
    """The root and one included file per registry, the same models in both."""
    (folder / "teams").mkdir(parents=True)
    root = folder / "registry.yaml"
    root.write_text(
        "version: 1\n"
        "registries:\n"
        f"  dev: {{tracking_uri: '{dev}'}}\n"
        f"  prod: {{tracking_uri: '{prod}'}}\n"
        "default_registry: dev\n"
        "include: [teams/*.yaml]\n",
        encoding="utf-8",
    )
    for name in ("dev", "prod"):
        (folder / "teams" / f"{name}.yaml").write_text(
            models_yaml.replace("version: 1\n", f"version: 1\nregistry: {name}\n", 1),
            encoding="utf-8",
        )
    return root


def plan_once(root: Path, registries: tuple[str, ...]) -> dict[str, Any]:
    from mlflow_gitops.reconcile import PlanRequest, plan_request

    with HostCounter() as http:
        started = time.perf_counter()
        outcome = plan_request(PlanRequest(root, None, datetime.now(UTC), registries=registries))
        wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "requests_by_server": dict(sorted(http.by_host.items())),
        "requests_s": sum(end - start for _, start, end in http.spans),
        "overlap_s": http.overlap_s(),  # both servers answering at once
        "changes": sum(len(r.plan.changes) for r in outcome.tree.registries),
        "versions_read": sum(
            len(m.versions) for o in outcome.opened for m in o.planned.observed.models.values()
        ),
    }


def read_only(urls: dict[str, str], names: list[str], together: bool) -> float:
    """The registry reads alone (what the threads overlap): both at once, or one then the other."""
    from concurrent.futures import ThreadPoolExecutor

    from mlflow_gitops.credentials import Credentials
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry

    registries = [MlflowRegistry(url, Credentials()) for url in urls.values()]
    started = time.perf_counter()
    if together:
        with ThreadPoolExecutor(max_workers=len(registries)) as pool:
            list(pool.map(lambda r: r.read(names), registries))
    else:
        for registry in registries:
            registry.read(names)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 models x 20 versions, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    quiet_mlflow()
    if not postgres_available():
        raise SystemExit("PostgreSQL on 127.0.0.1:5432 is needed for the prod registry")
    n_models, n_versions = (5, 4) if args.smoke else (50, 20) if args.quick else (500, 20)
    repeats = 1 if args.quick or args.smoke else args.repeats
    models = synthetic_models(n_models, n_versions)
    results: dict[str, Any] = {
        "registries": {
            "dev": "mlflow server, SQLite",
            "prod": "mlflow server, PostgreSQL",
            "models_each": n_models,
            "versions_each": n_models * n_versions,
        },
    }
    import tempfile

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-registries-")))
        dev_db = f"sqlite:///{tmp / 'dev.db'}"
        prod_db = stack.enter_context(postgres_database(f"bench_registries_{os.getpid()}"))
        populate = {}
        for name, db in (("dev", dev_db), ("prod", prod_db)):
            started = time.perf_counter()
            create_schema(db)
            populate[name] = {"schema_s": time.perf_counter() - started}
            populate[name]["insert_s"] = write_registry(db, models)
        results["populate"] = populate
        (tmp / "dev").mkdir()
        (tmp / "prod").mkdir()
        dev = stack.enter_context(MlflowServer(dev_db, tmp / "dev"))
        prod = stack.enter_context(MlflowServer(prod_db, tmp / "prod"))
        hosts = {urlsplit(dev.url).netloc: "dev", urlsplit(prod.url).netloc: "prod"}
        root = write_tree(tmp / "tree", dev.url, prod.url, registry_yaml(models))
        print(f"dev at {dev.url}, prod at {prod.url}; {n_models * n_versions:,} versions each")
        plan_once(root, ())  # warm-up: imports, server caches
        concurrent, sequential, reads = [], [], []
        urls = {"dev": dev.url, "prod": prod.url}
        names = [m.name for m in models]
        for _ in range(repeats):
            reads.append(
                {
                    "together_s": read_only(urls, names, True),
                    "one_after_the_other_s": read_only(urls, names, False),
                }
            )
            concurrent.append(plan_once(root, ()))
            one = [plan_once(root, (name,)) for name in ("dev", "prod")]
            sequential.append(
                {
                    "wall_s": sum(r["wall_s"] for r in one),
                    "each_s": {n: r["wall_s"] for n, r in zip(("dev", "prod"), one, strict=True)},
                }
            )
        for run in concurrent:
            run["requests_by_server"] = {
                hosts.get(k, k): v for k, v in run["requests_by_server"].items()
            }
        results["concurrent"] = {"runs": concurrent, "median_wall_s": median(
            [r["wall_s"] for r in concurrent]
        )}  # fmt: skip
        results["one_after_the_other"] = {
            "runs": sequential,
            "median_wall_s": median([r["wall_s"] for r in sequential]),
        }
        results["reads_only"] = {
            "runs": reads,
            "median_together_s": median([r["together_s"] for r in reads]),
            "median_one_after_the_other_s": median([r["one_after_the_other_s"] for r in reads]),
        }
    report(results)
    path = write_results("plan_registries", results, args.quick, smoke=args.smoke)
    print(f"\nwrote {path}")


def report(r: dict[str, Any]) -> None:
    last = r["concurrent"]["runs"][-1]
    rows = [
        [name, r["registries"]["versions_each"], last["requests_by_server"].get(name, 0)]
        for name in ("dev", "prod")
    ]
    print(table(["registry", "versions", "REST calls (one plan)"], rows))
    conc = r["concurrent"]["median_wall_s"]
    seq = r["one_after_the_other"]["median_wall_s"]
    print(
        f"plan over both: concurrent {conc:.2f} s, one after the other {seq:.2f} s "
        f"({seq / conc:.2f}x); changes {last['changes']}, versions read {last['versions_read']:,}"
    )
    print(
        f"requests in flight: {last['requests_s']:.2f} s in all, {last['overlap_s']:.2f} s of it "
        "with both servers answering at once"
    )
    reads = r["reads_only"]
    print(
        f"the reads alone: together {reads['median_together_s']:.2f} s, one after the other "
        f"{reads['median_one_after_the_other_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
