"""`mlflow-gitops relay`: configure logging, read the environment, serve until stopped."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from mlflow_gitops.relay.service import config_from, run


def serve_command(*, repository: str | None, secret_env: str, journal: Path, **options: Any) -> int:
    """Serve until SIGINT or SIGTERM (exit 0); a missing variable is a GitopsError (exit 1)."""
    config = config_from(
        os.environ, repository=repository, secret_env=secret_env, journal=journal, **options
    )
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # systemd's stop: the journal keeps the queue
    try:
        run(config)
    except KeyboardInterrupt:
        logging.getLogger("mlflow_gitops.relay").info("relay: stopped")
    return 0
