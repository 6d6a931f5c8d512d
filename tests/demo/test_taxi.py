"""Tests for the synthetic NYC green taxi data set and the course preparation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlflow_gitops.demo import taxi

ROWS = 3_000


def _minutes(df: pd.DataFrame) -> pd.Series:
    return (df["lpep_dropoff_datetime"] - df["lpep_pickup_datetime"]).dt.total_seconds() / 60


def test_generate_month_is_deterministic() -> None:
    first = taxi.generate_month(2021, 1, ROWS, seed=7)
    second = taxi.generate_month(2021, 1, ROWS, seed=7)
    pd.testing.assert_frame_equal(first, second)


@pytest.mark.parametrize(("year", "month", "seed"), [(2021, 2, 0), (2022, 1, 0), (2021, 1, 1)])
def test_other_months_and_seeds_differ(year: int, month: int, seed: int) -> None:
    base = taxi.generate_month(2021, 1, ROWS, seed=0)
    other = taxi.generate_month(year, month, ROWS, seed=seed)
    assert not base["trip_distance"].equals(other["trip_distance"])
    assert not base["lpep_pickup_datetime"].equals(other["lpep_pickup_datetime"])


def test_columns_and_dtypes_match_tlc_schema() -> None:
    df = taxi.generate_month(2021, 3, ROWS)
    assert list(df.columns) == list(taxi.COLUMNS)
    assert len(df) == ROWS
    assert str(df["lpep_pickup_datetime"].dtype) == "datetime64[us]"
    assert str(df["lpep_dropoff_datetime"].dtype) == "datetime64[us]"
    for column, kind in taxi.COLUMNS.items():
        if kind == "int64":
            assert df[column].dtype == np.int64, column
        elif kind == "double":
            assert df[column].dtype == np.float64, column
    assert df["ehail_fee"].isna().all()


def test_write_months_uses_tlc_names_and_schema(tmp_path: Path) -> None:
    paths = taxi.write_months(tmp_path / "data", rows=500)
    assert [p.name for p in paths] == [
        "green_tripdata_2021-01.parquet",
        "green_tripdata_2021-02.parquet",
        "green_tripdata_2021-03.parquet",
    ]
    expected = taxi.arrow_schema()
    for path in paths:
        assert pq.read_schema(path).remove_metadata().equals(expected)
    back = taxi.read_trips(paths[0])
    generated = taxi.generate_month(2021, 1, 500)
    pd.testing.assert_frame_equal(back, generated)


def test_generated_month_has_realistic_dirt() -> None:
    df = taxi.generate_month(2021, 1, ROWS)
    minutes = _minutes(df)
    assert 0.005 < (minutes < 1).mean() < 0.05
    assert 0.005 < (minutes > 60).mean() < 0.06
    years = df["lpep_pickup_datetime"].dt.year
    assert 1 <= (years != 2021).sum() <= 5
    assert (df["trip_distance"] > 1_000).sum() >= 1  # odometer glitches, like the real files
    in_month = df.loc[years == 2021, "lpep_pickup_datetime"].dt.month
    assert (in_month == 1).all()
    assert df["PULocationID"].between(1, 265).all()
    assert df["DOLocationID"].between(1, 265).all()
    assert (df["trip_distance"] >= 0).all()


def test_duration_depends_on_distance() -> None:
    x, y = taxi.prepare(taxi.generate_month(2021, 1, ROWS))
    distance = np.array([row["trip_distance"] for row in x])
    plausible = distance < 100
    assert np.corrcoef(distance[plausible], y[plausible])[0, 1] > 0.7


def test_prepare_filters_durations_and_builds_pu_do() -> None:
    start = pd.Timestamp("2021-01-05 10:00:00")
    minutes = [0.5, 1.0, 30.0, 60.0, 61.0, -3.0]
    df = pd.DataFrame(
        {
            "lpep_pickup_datetime": [start] * len(minutes),
            "lpep_dropoff_datetime": [start + pd.Timedelta(minutes=m) for m in minutes],
            "PULocationID": [1, 43, 74, 75, 7, 9],
            "DOLocationID": [2, 151, 75, 74, 8, 9],
            "trip_distance": [0.1, 1.01, 5.5, 12.0, 3.0, 1.0],
        }
    )
    before = df.copy()
    x, y = taxi.prepare(df)
    assert x == [
        {"PU_DO": "43_151", "trip_distance": 1.01},
        {"PU_DO": "74_75", "trip_distance": 5.5},
        {"PU_DO": "75_74", "trip_distance": 12.0},
    ]
    np.testing.assert_allclose(y, [1.0, 30.0, 60.0])
    assert y.dtype == np.float64
    pd.testing.assert_frame_equal(df, before)  # the input is not modified


def test_prepare_on_generated_month() -> None:
    df = taxi.generate_month(2021, 2, ROWS)
    x, y = taxi.prepare(df)
    assert len(x) == len(y) == int(_minutes(df).between(1, 60).sum())
    assert 0.9 * ROWS < len(y) < ROWS
    assert y.min() >= 1
    assert y.max() <= 60
    assert all(set(row) == {"PU_DO", "trip_distance"} for row in x)
    assert all(isinstance(row["PU_DO"], str) and "_" in row["PU_DO"] for row in x)


def test_prepare_frame_is_the_hook_alias() -> None:
    assert taxi.prepare_frame is taxi.prepare


def test_read_trips_csv_matches_parquet(tmp_path: Path) -> None:
    df = taxi.generate_month(2021, 1, 400)
    parquet = tmp_path / "trips.parquet"
    csv = tmp_path / "trips.csv"
    df.to_parquet(parquet)
    df.to_csv(csv, index=False)
    x_parquet, y_parquet = taxi.prepare(taxi.read_trips(parquet))
    x_csv, y_csv = taxi.prepare(taxi.read_trips(str(csv)))
    assert x_csv == x_parquet
    np.testing.assert_allclose(y_csv, y_parquet)


def test_generate_month_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rows"):
        taxi.generate_month(2021, 1, -1)
    with pytest.raises(ValueError, match="month"):
        taxi.generate_month(2021, 13, 10)


@pytest.mark.parametrize("rows", [0, 1, 7])
def test_tiny_months(rows: int) -> None:
    df = taxi.generate_month(2021, 1, rows)
    assert len(df) == rows
    assert list(df.columns) == list(taxi.COLUMNS)
