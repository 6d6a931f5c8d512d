"""Which filters the reader sends to each server generation, and which refusal switches them."""

from __future__ import annotations

import pytest

from mlflow_gitops.registry.client import (
    MAX_NAME_FILTERS,
    _filters,
    _refuses_name_in,
)

REFUSAL = (
    "INVALID_PARAMETER_VALUE: Only the 'run_id' attribute supports comparison with a list of "
    "quoted string values."
)


class FakeMlflowError(Exception):
    """Shaped like mlflow's RestException: an error_code and a message."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code, self.message = error_code, message


@pytest.mark.parametrize(
    ("names", "no_name_in", "expected"),
    [
        (None, False, [None]),
        (None, True, [None]),
        (["b", "a"], False, ["name IN ('a', 'b')"]),
        (["b", "a"], True, ["name = 'a'", "name = 'b'"]),
        (["it's"], True, ["name = 'it\\'s'"]),
        ([f"m{i}" for i in range(MAX_NAME_FILTERS)], True, [f"name = 'm{i}'" for i in range(5)]),
        ([f"m{i}" for i in range(MAX_NAME_FILTERS + 1)], True, [None]),
        ([f"m{i:04d}" for i in range(2000)], False, [None]),  # more than 2 IN chunks: one scan
    ],
)
def test_filters_per_server_generation(
    names: list[str] | None, no_name_in: bool, expected: list[str | None]
) -> None:
    assert _filters(None if names is None else set(names), no_name_in) == expected


@pytest.mark.parametrize(
    ("error", "refusal"),
    [
        (FakeMlflowError("INVALID_PARAMETER_VALUE", REFUSAL), True),
        # the same words under another code, another INVALID_PARAMETER_VALUE: real errors
        (FakeMlflowError("BAD_REQUEST", REFUSAL), False),
        (FakeMlflowError("INVALID_PARAMETER_VALUE", "Invalid filter 'name IN ('a''"), False),
        (FakeMlflowError("PERMISSION_DENIED", "Permission denied"), False),
        (ConnectionError("Connection refused"), False),
    ],
)
def test_only_mlflow2s_refusal_of_name_in_switches_filters(error: Exception, refusal: bool) -> None:
    assert _refuses_name_in(error) is refusal
