"""scikit-learn's `DictVectorizer.transform`, column by column: the same matrix, bit for bit.

The course's preprocessor (a fitted DictVectorizer over `PU_DO` strings and `trip_distance`)
walks every value of every row in Python; on the March data that is a third of a gate that
scores a fast model. When every row has the same keys and every key's values are all strings or
all plain numbers (the shape a `prepare` hook returns), the matrix is a function of each column
alone: strings become `key=value` one-hot columns through the fitted vocabulary, numbers stay
under their key. `transform` computes that with numpy, then checks its first rows against
scikit-learn's own transform of them; anything else (other value types, rows with other keys, a
dense or non-float64 vectorizer, a subclass, a mismatch in the check) gets scikit-learn's
transform. Pure: no MLflow, no I/O.
"""

from __future__ import annotations

from typing import Any

DICT_VECTORIZER = ("sklearn.feature_extraction._dict_vectorizer", "DictVectorizer")
CHECKED_ROWS = 64  # rows compared with scikit-learn's own transform before the result is used


def transform(vectorizer: Any, x: Any) -> Any:
    """`vectorizer.transform(x)` for a DictVectorizer; `x` a list of dicts or a DataFrame (its
    records)."""
    fast = column_wise(vectorizer, x)
    return fast if fast is not None else transform_records(vectorizer, x)


def column_wise(vectorizer: Any, x: Any) -> Any | None:
    """The matrix computed column by column, or None when `x` is not the simple case."""
    import numpy as np

    kind = type(vectorizer)
    if (kind.__module__, kind.__qualname__) != DICT_VECTORIZER or not vectorizer.sparse:
        return None  # a subclass may transform otherwise; a dense result is scikit-learn's
    if vectorizer.dtype not in (np.float64, float):
        return None
    columns = _columns(x)
    if columns is None:
        return None
    keys, values, rows = columns
    if rows == 0:
        return None  # scikit-learn's own error for an empty sample
    index = np.empty((rows, len(keys)), dtype=np.int64)
    data = np.empty((rows, len(keys)), dtype=np.float64)
    for j, (key, column) in enumerate(zip(keys, values, strict=True)):
        if not _column(vectorizer, key, column, index[:, j], data[:, j]):
            return None
    order = np.argsort(index, axis=1, kind="stable")  # scikit-learn sorts each row's indices
    index = np.take_along_axis(index, order, axis=1)
    data = np.take_along_axis(data, order, axis=1)
    if ((index[:, 1:] == index[:, :-1]) & (index[:, 1:] >= 0)).any():
        return None  # two keys named the same feature: scikit-learn keeps both entries
    kept = index >= 0  # values outside the fitted vocabulary are ignored, as by scikit-learn
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(kept.sum(axis=1), out=indptr[1:])
    head = x[:CHECKED_ROWS] if isinstance(x, list) else x.iloc[:CHECKED_ROWS]
    expected = transform_records(vectorizer, head)
    matrix = type(expected)(
        (data[kept], index[kept], indptr), shape=(rows, len(vectorizer.vocabulary_))
    )
    matrix.indices = matrix.indices.astype(expected.indices.dtype, copy=False)
    matrix.indptr = matrix.indptr.astype(expected.indptr.dtype, copy=False)
    return matrix if _starts_with(matrix, expected) else None


def transform_records(vectorizer: Any, x: Any) -> Any:
    """scikit-learn's own transform of a list of dicts or a DataFrame's records."""
    return vectorizer.transform(x.to_dict(orient="records") if hasattr(x, "to_dict") else x)


def _columns(x: Any) -> tuple[list[Any], list[Any], int] | None:
    """(keys, each key's values, rows) of a list of dicts with the same keys, or of a
    DataFrame with unique column names; None otherwise."""
    import numpy as np
    import pandas as pd

    if isinstance(x, list):
        if not x or not all(type(r) is dict for r in x):
            return None
        keys = list(x[0])
        if any(len(r) != len(keys) for r in x):
            return None
        try:
            return keys, [[r[k] for r in x] for k in keys], len(x)
        except KeyError:
            return None  # a row with other keys
    columns = getattr(x, "columns", None)
    if columns is None or not hasattr(x, "to_dict") or not columns.is_unique:
        return None
    values: list[Any] = []
    for key in columns:
        column = x[key]
        if column.dtype == object or isinstance(column.dtype, pd.StringDtype):
            values.append(column.tolist())  # str, or other objects (then scikit-learn's path)
        elif column.dtype in (np.float64, np.int64):
            values.append(column.to_numpy())  # records hold the same numbers as Python's
        else:
            return None  # bool, category, datetime, extension types: scikit-learn's path
    return list(columns), values, len(x)


def _column(vectorizer: Any, key: Any, column: Any, index: Any, data: Any) -> bool:
    """Fill one key's feature indices (-1: not in the vocabulary) and values; False when its
    values are not all strings or all plain numbers."""
    import numpy as np
    import pandas as pd

    vocabulary = vectorizer.vocabulary_
    if not isinstance(column, list):  # a float64 or int64 column of a DataFrame
        index[:] = vocabulary.get(key, -1)
        data[:] = column.astype(np.float64)
        return True
    kinds = set(map(type, column))
    if kinds == {str}:
        codes, uniques = pd.factorize(np.asarray(column, dtype=object), use_na_sentinel=False)
        names = ["%s%s%s" % (key, vectorizer.separator, u) for u in uniques]  # noqa: UP031 (scikit-learn's own formatting)
        index[:] = np.array([vocabulary.get(n, -1) for n in names], dtype=np.int64)[codes]
        data[:] = 1.0
        return True
    if kinds and kinds <= {float, int}:
        index[:] = vocabulary.get(key, -1)
        try:
            data[:] = np.fromiter(map(float, column), dtype=np.float64, count=len(column))
        except OverflowError:
            return False  # an int beyond float64: scikit-learn's path says so
        return True
    return False


def _starts_with(matrix: Any, head: Any) -> bool:
    """`matrix`'s first rows are `head`: the same class, columns, dtypes and stored entries
    (NaN equal to NaN)."""
    import numpy as np

    rows = head.shape[0]
    end = matrix.indptr[rows]
    return (
        type(matrix) is type(head)
        and matrix.shape[1] == head.shape[1]
        and matrix.dtype == head.dtype
        and matrix.indices.dtype == head.indices.dtype
        and matrix.indptr.dtype == head.indptr.dtype
        and np.array_equal(matrix.indptr[: rows + 1], head.indptr)
        and np.array_equal(matrix.indices[:end], head.indices)
        and np.array_equal(matrix.data[:end], head.data, equal_nan=True)
    )
