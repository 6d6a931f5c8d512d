"""What `policies:` cost: `validate` of examples/policies/registry.yaml against the same file
without its rules (wall time of the command as a subprocess, median of 3 after a warm-up), and
the four example rules judged over a plan of N changes in one process (the parser built once).

    .venv/bin/python bench/policies.py [--quick | --smoke]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import (
    BENCH,
    GITOPS,
    SMOKE_HELP,
    median,
    table,
    timed_subprocess,
    write_results,
)

SRC = str(BENCH.parent / "src")  # measure this checkout, not whichever one the venv installed
sys.path.insert(0, SRC)
ENV = {**os.environ, "PYTHONPATH": SRC}
EXAMPLE = BENCH.parent / "examples" / "policies" / "registry.yaml"
RUNS = 3


def _validate(path: Path) -> float:
    timed_subprocess([GITOPS, "validate", str(path)], env=ENV)  # warm-up
    times = []
    for _ in range(RUNS):
        seconds, done = timed_subprocess([GITOPS, "validate", str(path)], env=ENV)
        assert done.returncode == 0, done.stderr
        times.append(seconds)
    return median(times)


def _judge(changes: int) -> float:
    from mlflow_gitops.plan.changes import Plan, Target, TransitionStage
    from mlflow_gitops.plan.tree import RegistryPlan, TreePlan
    from mlflow_gitops.policy.evaluate import judge
    from mlflow_gitops.policy.facts import Approval, PullFacts
    from mlflow_gitops.spec.tree import load_tree

    rules = load_tree(EXAMPLE).root.spec.policies or []
    plan = Plan(
        changes=tuple(
            TransitionStage(
                model=f"m{i:05d}", target=Target(version=2), before="Staging", after="Production"
            )
            for i in range(changes)
        )
    )
    tree = TreePlan(registries=(RegistryPlan(registry="prod", identity="x", plan=plan),))
    pr = PullFacts(number=1, author="alice", approvals=(Approval("bob", ("ml-platform",)),))
    started = time.perf_counter()
    report = judge(rules, tree, pr, datetime(2026, 12, 3, tzinfo=UTC))
    assert len(report.verdicts) == changes
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    quick, smoke = args.quick, args.smoke
    text = EXAMPLE.read_text(encoding="utf-8")
    bare = text[: text.index("policies:")] + text[text.index("models:") :]
    with tempfile.TemporaryDirectory() as folder:
        plain = Path(folder) / "registry.yaml"
        plain.write_text(bare, encoding="utf-8")
        without = _validate(plain)
        with_rules = _validate(EXAMPLE)
    _judge(1)  # builds the CEL parser, once per process
    sizes = [10] if smoke else [10, 100] if quick else [10, 100, 1000]
    judged = {n: _judge(n) for n in sizes}
    print(
        table(
            ["validate", "seconds", "ratio"],
            [["without policies", without, 1.0], ["4 rules", with_rules, with_rules / without]],
        )
    )
    print()
    print(
        table(
            ["changes judged (4 rules)", "seconds", "ms per change"],
            [[n, s, 1000 * s / n] for n, s in judged.items()],
        )
    )
    data: dict[str, Any] = {
        "validate_without_policies_s": without,
        "validate_with_4_rules_s": with_rules,
        "ratio": with_rules / without,
        "judge_s": {str(n): s for n, s in judged.items()},
    }
    print(write_results("policies", data, quick, smoke=smoke))


if __name__ == "__main__":
    main()
