"""Where the registry is: --tracking-uri, MLFLOW_TRACKING_URI, the file's tracking_uri, the default."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(flag: str | None, file_uri: str | None, folder: Path) -> str:
    """The first of flag, environment, file, default; relative sqlite paths from the file resolve
    against the file's folder so the registry does not depend on the working directory."""
    if flag:
        return flag
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return _anchor(file_uri or DEFAULT_URI, folder)


def _anchor(uri: str, folder: Path) -> str:
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith("sqlite:////"):
        relative = uri[len(prefix) :]
        if relative and relative != ":memory:":
            return prefix + str((folder / relative).resolve())
    return uri
