"""Run the CLI in-process (fast) or as a subprocess (real startup, real exit codes)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlflow_gitops.cli import main


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> Outcome:
    """mlflow-gitops ARGS in this process; returns exit code, stdout and stderr."""
    capsys.readouterr()
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def run_process(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Outcome:
    """mlflow-gitops ARGS as a child process."""
    full_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "mlflow_gitops", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return Outcome(proc.returncode, proc.stdout, proc.stderr)
