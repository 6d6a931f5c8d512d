"""A deterministic, NYC-green-taxi-shaped data set and the MLOps-course preparation.

``generate_month`` produces frames with exactly the columns and Arrow types of the TLC green
taxi 2021 parquet files (``COLUMNS``).  Trip durations depend on the trip distance and on the
pickup/dropoff zone pair (zone speeds, river crossings, a fixed overhead), plus noise, so a tree
ensemble beats a linear model on ``PU_DO`` + ``trip_distance``.  Like the real files, a few
percent of the rows are dirty: durations below one minute or above an hour, and a handful of
pickup times from other years.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "COLUMNS",
    "DEFAULT_MONTHS",
    "arrow_schema",
    "file_name",
    "generate_month",
    "prepare",
    "prepare_frame",
    "read_trips",
    "write_months",
]

COLUMNS: Mapping[str, str] = {
    "VendorID": "int64",
    "lpep_pickup_datetime": "timestamp[us]",
    "lpep_dropoff_datetime": "timestamp[us]",
    "store_and_fwd_flag": "string",
    "RatecodeID": "double",
    "PULocationID": "int64",
    "DOLocationID": "int64",
    "passenger_count": "double",
    "trip_distance": "double",
    "fare_amount": "double",
    "extra": "double",
    "mta_tax": "double",
    "tip_amount": "double",
    "tolls_amount": "double",
    "ehail_fee": "null",
    "improvement_surcharge": "double",
    "total_amount": "double",
    "payment_type": "double",
    "trip_type": "double",
    "congestion_surcharge": "double",
}
"""Column name -> Arrow type of the TLC green taxi 2021 parquet files, in file order."""

DEFAULT_MONTHS: tuple[tuple[int, int], ...] = ((2021, 1), (2021, 2), (2021, 3))

PICKUP = "lpep_pickup_datetime"
DROPOFF = "lpep_dropoff_datetime"

_N_ZONES = 265  # TLC taxi zones are numbered 1..265
_CITY_SALT = 0x7A71  # separates the city layout stream from the per-month streams
_APP_HAIL_SHARE = 0.3  # rows with no flag/ratecode/passengers/payment, minute-rounded times
_SHORT_SHARE = 0.019  # real January 2021: 1.9% of trips under a minute
_GLITCH_SHARE = 0.0008  # real January 2021: 62 of 73,908 kept trips over 100 miles
_LONG_SHARE = 0.006  # meters left running; with slow long trips ~1.5% exceed an hour

_ARROW_TYPES: Mapping[str, Any] = {
    "int64": pa.int64(),
    "timestamp[us]": pa.timestamp("us"),
    "string": pa.string(),
    "double": pa.float64(),
    "null": pa.null(),
}

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def arrow_schema() -> pa.Schema:
    """Return ``COLUMNS`` as a pyarrow schema."""
    return pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in COLUMNS.items()])


def file_name(year: int, month: int) -> str:
    """Return the TLC file name for a month, e.g. ``green_tripdata_2021-01.parquet``."""
    return f"green_tripdata_{year:04d}-{month:02d}.parquet"


class _City:
    """Fixed zone layout shared by every month of one seed (so models generalise)."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng([seed, _CITY_SALT])
        n = _N_ZONES
        self.ids: IntArray = np.arange(1, n + 1, dtype=np.int64)
        # Zones in miles on a 16 x 20 plane; a "river" at x = 0 separates two boroughs.
        self.x: FloatArray = rng.uniform(-8.0, 8.0, n)
        self.y: FloatArray = rng.uniform(-10.0, 10.0, n)
        # Dense core (slow) around the origin, faster outskirts: a per-zone pace multiplier.
        radius = np.hypot(self.x, self.y)
        self.pace: FloatArray = (1.15 - 0.03 * radius) * rng.lognormal(0.0, 0.12, n)
        # A few zones are notoriously congested (extra minutes per trip touching them).
        self.delay: FloatArray = np.where(rng.random(n) < 0.05, rng.uniform(1.0, 4.0, n), 0.0)
        # Pickup popularity: heavy-tailed, like the real 74/75/41/42/... hot spots.
        popularity = rng.pareto(1.2, n) + 0.05
        popularity[rng.random(n) < 0.05] = 0.0  # some zones never see green cabs
        self.pickup_p: FloatArray = popularity / popularity.sum()
        self.attract: FloatArray = rng.gamma(0.7, 1.0, n) + 0.02

    def dropoffs(self, rng: np.random.Generator, pickups: IntArray) -> IntArray:
        """Sample one dropoff zone index per pickup zone index: mostly nearby, some far."""
        out = np.empty_like(pickups)
        for zone in np.unique(pickups):
            mask = pickups == zone
            dist = np.hypot(self.x - self.x[zone], self.y - self.y[zone])
            weights = self.attract * (np.exp(-dist / 1.2) + 0.01)
            weights[zone] *= 3.0  # intrazonal trips are common
            out[mask] = rng.choice(_N_ZONES, size=int(mask.sum()), p=weights / weights.sum())
        return out


def _month_bounds(year: int, month: int) -> tuple[np.datetime64, int]:
    start = np.datetime64(f"{year:04d}-{month:02d}-01T00:00:00", "us")
    days = calendar.monthrange(year, month)[1]
    return start, days * 86_400


def _round_to(values: FloatArray, step: float) -> FloatArray:
    return np.round(np.round(values / step) * step, 2)


def generate_month(year: int, month: int, rows: int, seed: int = 0) -> pd.DataFrame:
    """Generate one month of synthetic green taxi trips, deterministic in (seed, year, month)."""
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if not 1 <= month <= 12:
        raise ValueError(f"month must be in 1..12, got {month}")
    city = _City(seed)
    rng = np.random.default_rng([seed, year, month])
    n = rows

    # --- where -----------------------------------------------------------------------------
    pu = rng.choice(_N_ZONES, size=n, p=city.pickup_p)
    do = city.dropoffs(rng, pu)
    # Exact pickup/dropoff points scatter around the zone centres (zones are ~1 mile wide).
    jitter = rng.normal(0.0, 0.45, (4, n))
    dx = city.x[do] + jitter[0] - city.x[pu] - jitter[1]
    dy = city.y[do] + jitter[2] - city.y[pu] - jitter[3]
    detour = rng.uniform(1.15, 1.6, n)  # streets are not straight lines
    distance = np.hypot(dx, dy) * detour + 0.1
    distance = np.round(np.maximum(distance, 0.0), 2)
    distance[rng.random(n) < 0.005] = 0.0  # meters that never started counting miles

    # --- when ------------------------------------------------------------------------------
    start, seconds_in_month = _month_bounds(year, month)
    offsets = np.sort(rng.integers(0, seconds_in_month, n))
    hour = (offsets // 3600) % 24
    rush = np.isin(hour, [7, 8, 9, 16, 17, 18, 19])

    # --- how long --------------------------------------------------------------------------
    # Short hops crawl through traffic, long trips reach faster roads: minutes ~ distance^0.7.
    pace = np.sqrt(city.pace[pu] * city.pace[do]) * np.where(rush, 1.15, 1.0)
    crossing = np.sign(city.x[pu]) != np.sign(city.x[do])  # bridges
    minutes = (
        (1.0 + 5.5 * distance**0.7) * pace
        + np.where(crossing, 3.0, 0.0)
        + city.delay[pu]
        + city.delay[do]
    )
    minutes *= rng.lognormal(0.0, 0.3, n)  # weather, lights, driver, route choice
    minutes = np.maximum(minutes, 1.05)  # real sub-minute trips are the dirty ones below

    # Dirty durations: zero/sub-minute trips and meters left running for hours.
    dirty = rng.random(n)
    short = dirty < _SHORT_SHARE
    long_ = (dirty >= _SHORT_SHARE) & (dirty < _SHORT_SHARE + _LONG_SHARE)
    minutes = np.where(short, rng.choice([0.0, 0.25, 0.5, 0.75], n), minutes)
    minutes = np.where(long_, rng.uniform(61.0, 1440.0, n), minutes)

    pickup = start + offsets.astype("timedelta64[s]").astype("timedelta64[us]")
    duration = np.round(minutes * 60.0).astype(np.int64).astype("timedelta64[s]")
    dropoff = pickup + duration.astype("timedelta64[us]")

    # App/street-hail rows (the real files' trailing block): minute-rounded timestamps.
    app = np.zeros(n, dtype=bool)
    n_app = round(n * _APP_HAIL_SHARE)
    if n_app:
        app[n - n_app :] = True
        app_rows = np.flatnonzero(app)
        rng.shuffle(app_rows)  # keep the block, but not in pickup order
        pickup[n - n_app :] = pickup[app_rows].astype("datetime64[m]").astype("datetime64[us]")
        dropoff[n - n_app :] = dropoff[app_rows].astype("datetime64[m]").astype("datetime64[us]")
        for arr in (pu, do, distance, minutes):
            arr[n - n_app :] = arr[app_rows]
    metered = distance.copy()  # what the fare is based on, before odometer glitches
    if n_app:
        # Odometer glitches: ~0.08% of trips (real: nearly all app rows) claim 1e3..2.5e5 miles.
        # A fixed count (not a coin flip per row) keeps every month of a seed comparably dirty.
        n_glitch = min(n_app, max(1, round(n * _GLITCH_SHARE)) if n >= 1_000 else 0)
        glitch = rng.choice(np.flatnonzero(app), size=n_glitch, replace=False)
        distance[glitch] = np.round(rng.uniform(1_000.0, 250_000.0, n_glitch), 2)

    # A few pickups stamped in other years (the real January 2021 file has 2009 and 2020 ones).
    n_other = max(1, n // 10_000) if n >= 100 else 0
    if n_other:
        idx = rng.choice(n, size=n_other, replace=False)
        years = rng.choice([2008, 2009, year - 1, year + 1], size=n_other)
        for i, other in zip(idx.tolist(), years.tolist(), strict=True):
            shift = np.datetime64(f"{other:04d}-01-01", "us") - start
            pickup[i] += shift
            dropoff[i] += shift

    # --- what it cost ----------------------------------------------------------------------
    vendor = np.where(app | (rng.random(n) < 0.9), 2, 1).astype(np.int64)
    ratecode = rng.choice([1.0, 5.0, 2.0, 4.0, 3.0], size=n, p=[0.96, 0.03, 0.005, 0.004, 0.001])
    fare = 2.5 + 2.5 * metered + 0.3 * np.minimum(minutes, 120.0)
    fare = np.where(ratecode == 2.0, 52.0, fare)
    fare = np.where(ratecode == 5.0, _round_to(rng.uniform(8.0, 60.0, n), 0.5), fare)
    fare = np.where(app, np.round(fare * rng.uniform(0.9, 1.1, n), 2), _round_to(fare, 0.5))
    extra = rng.choice([0.0, 0.5, 1.0, 2.75], size=n, p=[0.62, 0.08, 0.1, 0.2])
    extra = np.where(app, 0.0, extra)
    mta_tax = np.where(app, 0.0, 0.5)
    payment = rng.choice([1.0, 2.0, 3.0, 4.0], size=n, p=[0.6, 0.38, 0.015, 0.005])
    tip = np.where(payment == 1.0, np.round(fare * rng.uniform(0.0, 0.3, n), 2), 0.0)
    tip = np.where(app, 2.75, tip)
    tolls = np.where((metered > 8.0) & (rng.random(n) < 0.3), 6.12, 0.0)
    improvement = np.full(n, 0.3)
    congestion = np.where(rng.random(n) < 0.22, 2.75, 0.0)
    total = fare + extra + mta_tax + tip + tolls + improvement + np.where(app, 0.0, congestion)
    passengers = rng.choice(
        [1.0, 2.0, 5.0, 3.0, 6.0, 4.0, 0.0], size=n, p=[0.9, 0.06, 0.015, 0.01, 0.008, 0.004, 0.003]
    )
    trip_type = np.where(ratecode == 5.0, 2.0, 1.0)

    def app_nan(values: FloatArray) -> FloatArray:
        return np.where(app, np.nan, values)

    # Object array with None -> the pandas default string dtype, as read_parquet returns it.
    flag = np.where(rng.random(n) < 0.007, "Y", "N").astype(object)
    flag[app] = None

    frame = pd.DataFrame(
        {
            "VendorID": vendor,
            PICKUP: pickup,
            DROPOFF: dropoff,
            "store_and_fwd_flag": pd.Series(flag),
            "RatecodeID": app_nan(ratecode),
            "PULocationID": city.ids[pu],
            "DOLocationID": city.ids[do],
            "passenger_count": app_nan(passengers),
            "trip_distance": distance,
            "fare_amount": fare,
            "extra": extra,
            "mta_tax": mta_tax,
            "tip_amount": tip,
            "tolls_amount": tolls,
            "ehail_fee": pd.Series([None] * n, dtype=object),
            "improvement_surcharge": improvement,
            "total_amount": np.round(total, 2),
            "payment_type": app_nan(payment),
            "trip_type": app_nan(trip_type),
            "congestion_surcharge": app_nan(congestion),
        },
        columns=list(COLUMNS),
    )
    return frame


def write_months(
    out_dir: Path,
    rows: int,
    months: Iterable[tuple[int, int]] = DEFAULT_MONTHS,
    seed: int = 0,
) -> list[Path]:
    """Write one TLC-named parquet file per (year, month) into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    schema = arrow_schema()
    paths: list[Path] = []
    for year, month in months:
        frame = generate_month(year, month, rows, seed=seed)
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        path = out_dir / file_name(year, month)
        pq.write_table(table, path)
        paths.append(path)
    return paths


def read_trips(path: str | Path) -> pd.DataFrame:
    """Read a trips file (``.parquet`` or ``.csv``), parsing the pickup/dropoff timestamps."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path)
        for column in (PICKUP, DROPOFF):
            if column in frame.columns:
                frame[column] = pd.to_datetime(frame[column])
        return frame
    return pd.read_parquet(path)


def prepare(df: pd.DataFrame) -> tuple[list[dict[str, Any]], FloatArray]:
    """Course preparation: keep 1..60 minute trips; features ``PU_DO``/``trip_distance``."""
    pickup = pd.to_datetime(df[PICKUP])
    dropoff = pd.to_datetime(df[DROPOFF])
    duration = (dropoff - pickup).dt.total_seconds() / 60.0
    keep = (duration >= 1) & (duration <= 60)
    kept = df.loc[keep]
    pu_do = kept["PULocationID"].astype(str) + "_" + kept["DOLocationID"].astype(str)
    features = pd.DataFrame(
        {
            "PU_DO": pu_do.astype(object),
            "trip_distance": kept["trip_distance"].astype(float),
        }
    )
    dicts: list[dict[str, Any]] = features.to_dict(orient="records")  # type: ignore[assignment]
    target: FloatArray = np.asarray(duration[keep], dtype=np.float64)
    return dicts, target


prepare_frame = prepare
"""``module:function`` hook alias: DataFrame -> (X dicts, y durations)."""
