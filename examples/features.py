"""The evaluation hook registry.yaml's gates use: a DataFrame of TLC trips -> (X, y).

The course's preparation: duration in minutes, keep 1 to 60, PU_DO and trip_distance as features.
Gates resolve `prepare: examples.features:prepare` from the folder of registry.yaml only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlflow_gitops.demo.taxi import prepare as _prepare


def prepare(df: pd.DataFrame) -> tuple[list[dict[str, Any]], np.ndarray[Any, Any]]:
    """Features as dicts for the run's DictVectorizer, and the duration target."""
    return _prepare(df)
