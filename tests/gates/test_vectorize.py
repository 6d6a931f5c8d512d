"""The column-wise DictVectorizer transform gives scikit-learn's matrix bit for bit, and leaves
every input it does not cover to scikit-learn."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression

from mlflow_gitops.demo.taxi import generate_month, prepare
from mlflow_gitops.gates import predict, vectorize

TRAIN = [
    {"PU_DO": "1_2", "trip_distance": 1.5, "n": 3},
    {"PU_DO": "7_9", "trip_distance": 0.25, "n": 1},
    {"PU_DO": "3_3", "trip_distance": 12.0, "n": 2},
]


def fitted(rows: list[dict[str, Any]] = TRAIN, **kwargs: Any) -> DictVectorizer:
    return DictVectorizer(**kwargs).fit(rows)


def assert_same(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    assert a.shape == b.shape
    assert (a.dtype, a.indices.dtype, a.indptr.dtype) == (b.dtype, b.indices.dtype, b.indptr.dtype)
    assert np.array_equal(a.indptr, b.indptr)
    assert np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.data, b.data, equal_nan=True)


def records(x: Any) -> Any:
    return x.to_dict(orient="records") if isinstance(x, pd.DataFrame) else x


COVERED = {
    "unseen strings and an unknown numeric key are dropped": [
        {"PU_DO": "1_2", "trip_distance": 2.0, "n": 4, "extra": 5.0},
        {"PU_DO": "99_99", "trip_distance": 0.0, "n": 0, "extra": -1.0},
    ],
    "ints and floats in one column, NaN and infinities kept": [
        {"PU_DO": "7_9", "trip_distance": 3, "n": math.nan},
        {"PU_DO": "3_3", "trip_distance": math.inf, "n": 2**60 + 1},
        {"PU_DO": "1_2", "trip_distance": -0.0, "n": -math.inf},
    ],
    "rows with the same keys in another order": [
        {"trip_distance": 1.0, "PU_DO": "3_3", "n": 1},
        {"PU_DO": "1_2", "n": 2, "trip_distance": 4.5},
    ],
    "a frame of object, float64 and int64 columns": pd.DataFrame(
        {
            "PU_DO": pd.Series(["1_2", "x", "7_9"], dtype=object),
            "trip_distance": [1.0, 2.5, math.nan],
            "n": [1, 2, 3],
        }
    ),
    "a frame of pandas' string dtype": pd.DataFrame(
        {"PU_DO": pd.Series(["3_3", "1_2"], dtype="str"), "trip_distance": [0.5, 7.0]}
    ),
}


@pytest.mark.parametrize("x", COVERED.values(), ids=COVERED.keys())
def test_covered_inputs_are_transformed_column_wise_to_the_same_matrix(x: Any) -> None:
    vectorizer = fitted()
    fast = vectorize.column_wise(vectorizer, x)
    assert fast is not None
    assert_same(fast, vectorizer.transform(records(x)))


def test_the_course_data_gives_the_same_matrix_and_the_same_predictions() -> None:
    train, _ = prepare(generate_month(2021, 1, rows=3_000))
    march, y = prepare(generate_month(2021, 3, rows=5_000))
    vectorizer = DictVectorizer().fit(train)
    model = LinearRegression().fit(vectorizer.transform(train), np.arange(len(train)) % 7)
    fast = predict.transform(vectorizer, march)
    expected = vectorizer.transform(march)
    assert vectorize.column_wise(vectorizer, march) is not None
    assert_same(fast, expected)
    assert np.array_equal(model.predict(fast), model.predict(expected))
    assert len(y) == fast.shape[0] > vectorize.CHECKED_ROWS


def test_a_separator_and_sklearns_sparse_array_interface_are_followed() -> None:
    x = [{"PU_DO": "1_2", "trip_distance": 1.0}, {"PU_DO": "3_3", "trip_distance": 2.0}]
    vectorizer = fitted(separator="|")
    with sklearn.config_context(sparse_interface="sparray"):
        fast = vectorize.column_wise(vectorizer, x)
        assert fast is not None
        assert_same(fast, vectorizer.transform(x))


class Subclass(DictVectorizer):
    pass


LEFT_TO_SKLEARN = {
    "rows with other keys": (
        fitted(),
        [{"PU_DO": "1_2", "n": 1}, {"PU_DO": "1_2", "trip_distance": 1.0}],
    ),
    "a bool value": (fitted(), [{"PU_DO": "1_2", "n": True}]),
    "a None value": (fitted(), [{"PU_DO": "1_2", "n": None}]),
    "strings and numbers in one column": (fitted(), [{"PU_DO": "1_2"}, {"PU_DO": 3.0}]),
    "numpy scalars": (fitted(), [{"PU_DO": "1_2", "n": np.float32(0.1)}]),
    "a list value": (fitted(), [{"PU_DO": ["1_2", "3_3"]}]),
    "two keys naming one feature": (
        fitted([{"a": "b=c", "a=b": "c"}]),
        [{"a": "b=c", "a=b": "c"}],
    ),
    "a dense vectorizer": (fitted(sparse=False), [{"PU_DO": "1_2", "n": 1}]),
    "a float32 vectorizer": (fitted(dtype=np.float32), [{"PU_DO": "1_2", "n": 1}]),
    "a subclass": (Subclass().fit(TRAIN), [{"PU_DO": "1_2", "n": 1}]),
    "a frame with a bool column": (fitted(), pd.DataFrame({"PU_DO": ["1_2"], "n": [True]})),
    "a frame with duplicate column names": (
        fitted(),
        pd.DataFrame([["1_2", 1.0]], columns=["PU_DO", "PU_DO"]),
    ),
}


@pytest.mark.parametrize("case", LEFT_TO_SKLEARN.values(), ids=LEFT_TO_SKLEARN.keys())
def test_other_inputs_are_left_to_scikit_learn(case: tuple[DictVectorizer, Any]) -> None:
    vectorizer, x = case
    assert vectorize.column_wise(vectorizer, x) is None
    with warnings.catch_warnings():  # to_dict's "columns are not unique", on both paths
        warnings.simplefilter("ignore", UserWarning)
        expected = vectorizer.transform(records(x))
        got = vectorize.transform(vectorizer, x)
    if isinstance(expected, np.ndarray):
        assert np.array_equal(got, expected)
    else:
        assert_same(got, expected)


def test_an_empty_sample_gets_scikit_learns_error() -> None:
    with pytest.raises(ValueError, match="Sample sequence X is empty"):
        vectorize.transform(fitted(), [])
