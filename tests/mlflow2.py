"""MLflow 2.x in virtual environments of their own, for the servers of the compatibility tests.

Each environment is created once, under the repository (`.venv-mlflow2` with 2.22.x,
`.venv-mlflow29` with 2.9.x; gitignored), and reused: a file lock serialises concurrent creators (pytest workers, two test
runs), and a marker written last tells a complete environment from a half-built one, which is
rebuilt. `.ci/run` creates them before pytest (`python -m tests.mlflow2`), so the tests do not pay
for the install.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mlflow2Env:
    """One cached MLflow 2.x environment: its folder and the requirements it is built from."""

    folder: str
    requirements: tuple[str, ...]

    @property
    def path(self) -> Path:
        return REPO / self.folder

    @property
    def marker(self) -> Path:
        # the requirements are in the marker: changing them here rebuilds the environment
        return self.path / ".complete"

    def ready(self) -> bool:
        return self.marker.is_file() and self.marker.read_text() == "\n".join(self.requirements)

    def ensure(self) -> Path:
        """The environment's folder, created first if it is missing or incomplete."""
        if self.ready():
            return self.path
        lock_path = REPO / f"{self.folder}.lock"
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another creator finishes first; then it is ready
            if not self.ready():
                self._create()
        return self.path

    def _create(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        _run([base, "-m", "venv", str(self.path)], self.folder)
        pip = [str(self.path / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        _run([*pip, "--upgrade", "pip"], self.folder)
        _run([*pip, *self.requirements], self.folder)
        self.marker.write_text("\n".join(self.requirements))

    def bin(self, name: str) -> str:
        return str(self.ensure() / "bin" / name)


def _run(args: list[str], folder: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"creating the MLflow 2.x environment {folder} failed: {' '.join(args)}\n"
            f"{done.stdout[-2000:]}{done.stderr[-4000:]}\n"
            f"delete {REPO / folder} and run `python -m tests.mlflow2` to retry"
        )


# the last 2.x release; it needs sqlalchemy<2.1. scikit-learn logs and seeds the test runs with
# this MLflow (MLflow 3 clients log models through logged-model endpoints 2.x servers lack).
# The `auth` extra (Flask-WTF) lets `mlflow server --app-name basic-auth` start.
MLFLOW2 = Mlflow2Env(
    ".venv-mlflow2",
    ("mlflow[auth]==2.22.*", "sqlalchemy<2.1", "scikit-learn", "psycopg2-binary"),
)


def mlflow2_bin() -> str:
    """The `mlflow` executable of MLflow 2.22.x, created if missing."""
    return MLFLOW2.bin("mlflow")


def mlflow2_python() -> str:
    """The Python of the MLflow 2.22.x environment (it imports mlflow 2 and scikit-learn)."""
    return MLFLOW2.bin("python")


# an early 2.x: the first release that deprecated stages; still installs on Python 3.11
MLFLOW29 = Mlflow2Env(".venv-mlflow29", ("mlflow==2.9.*", "sqlalchemy<2.1", "scikit-learn"))


def mlflow29_bin() -> str:
    """The `mlflow` executable of MLflow 2.9.x, created if missing."""
    return MLFLOW29.bin("mlflow")


def mlflow29_python() -> str:
    """The Python of the MLflow 2.9.x environment."""
    return MLFLOW29.bin("python")


ENVS = (MLFLOW2, MLFLOW29)

if __name__ == "__main__":
    for env in ENVS:
        print(f"{env.folder}: {env.ensure()} ({', '.join(env.requirements)})")
