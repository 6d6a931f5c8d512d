"""The second demo, run as a user runs it: a promotion from a dev registry to a prod registry
(two SQLite files) through a tree whose prod file copies dev's version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "mlflow_gitops.demo", "--promote", "--rows", "2000", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


def test_the_promotion_demo_copies_dev_into_prod_and_ends_with_an_empty_plan(
    tmp_path: Path,
) -> None:
    done = _demo(tmp_path)

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout
    assert "✓ applied     copy dev:nyc-taxi-regressor/2 -> prod" in out
    assert "✓ gate metric for v1 -> Production, no baseline: PASS" in out
    after = out.split("== P6.")[1]
    assert "No changes. Every registry matches the files." in after
    history = out.split("== P7.")[1]
    assert "v1    copy dev:nyc-taxi-regressor/2 -> prod" in history
    assert "v1    None -> Production" in history
    assert "largest difference between their predictions 0 minutes" in history
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-data", "promote-demo"]  # no mlruns

    again = _demo(tmp_path)  # a second run trains nothing and changes nothing
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    assert "dev already holds 3 versions" in again.stdout
    assert "Apply complete" not in again.stdout
