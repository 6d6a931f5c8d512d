"""gates/data.py on local files: listing, partitions, batches, identity, and the error table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlflow_gitops.gates import data
from mlflow_gitops.gates.data import DataError, batches, identity, open_source


def write(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def frames(source: data.DataSource, rows: int) -> pd.DataFrame:
    return pd.concat([b.to_pandas() for b in batches(source, rows)], ignore_index=True)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """holdout/zone=a/part-0.parquet (x 0..9), holdout/zone=b/part-0.parquet (x 10..14), and
    files a reader must skip."""
    root = tmp_path / "holdout"
    write(root / "zone=a" / "part-0.parquet", pd.DataFrame({"x": range(10)}))
    write(root / "zone=b" / "part-0.parquet", pd.DataFrame({"x": range(10, 15)}))
    (root / "_SUCCESS").write_text("")
    (root / ".part-0.parquet.crc").write_text("crc")
    (root / "zone=b" / "README.txt").write_text("notes")
    return tmp_path


def test_a_directory_reads_every_file_with_its_partition_column(dataset: Path) -> None:
    source = open_source("holdout", dataset)
    assert [Path(f.path).relative_to(dataset).as_posix() for f in source.files] == [
        "holdout/zone=a/part-0.parquet",
        "holdout/zone=b/part-0.parquet",
    ]
    read = frames(source, 4)
    assert read["x"].tolist() == list(range(15))
    assert read["zone"].tolist() == ["a"] * 10 + ["b"] * 5
    assert max(len(b) for b in batches(source, 4)) == 4  # streamed in batches


@pytest.mark.parametrize(
    ("pattern", "xs", "zones"),
    [
        ("holdout/zone=*/*.parquet", list(range(15)), ["a"] * 10 + ["b"] * 5),
        ("holdout/zone=b/*.parquet", list(range(10, 15)), ["b"] * 5),
        ("holdout/*/part-?.parquet", list(range(15)), ["a"] * 10 + ["b"] * 5),
    ],
)
def test_a_glob_selects_files_and_keeps_partitions(
    dataset: Path, pattern: str, xs: list[int], zones: list[str]
) -> None:
    read = frames(open_source(pattern, dataset), 100)
    assert read["x"].tolist() == xs
    assert read["zone"].tolist() == zones


def test_a_file_uri_and_a_relative_path_read_the_same(dataset: Path) -> None:
    uri = (dataset / "holdout").as_uri()
    assert frames(open_source(uri, Path("/")), 100).equals(
        frames(open_source("holdout/", dataset), 100)
    )


def test_csv_streams_like_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": range(50), "y": [float(i) / 3 for i in range(50)]})
    csv = open_source(str(write(tmp_path / "d.csv", frame)), tmp_path)
    parquet = open_source(str(write(tmp_path / "d.parquet", frame)), tmp_path)
    assert csv.csv
    assert not parquet.csv
    assert frames(csv, 7).equals(frames(parquet, 7))


def test_local_identity_follows_the_content(dataset: Path) -> None:
    before = identity(open_source("holdout", dataset))
    assert identity(open_source("holdout", dataset)) == before
    write(dataset / "holdout" / "zone=b" / "part-0.parquet", pd.DataFrame({"x": range(20, 25)}))
    assert identity(open_source("holdout", dataset)) != before


@pytest.mark.parametrize(
    ("root", "base"),
    [
        ("bucket/green", "bucket/green"),
        ("bucket/green/year=2021", "bucket/green"),
        ("bucket/year=2021/month=3", "bucket"),
        ("/", "/"),
    ],
)
def test_partitions_are_read_below_the_first_key_value_folder(root: str, base: str) -> None:
    assert data._partition_base(root) == base


@pytest.mark.parametrize(
    ("pattern", "root"),
    [
        ("bucket/green/*.parquet", "bucket/green"),
        ("bucket/green/month=*/part-*.parquet", "bucket/green"),
        ("bucket/*/x.parquet", "bucket"),
        ("/data/[ab]/x.parquet", "/data"),
    ],
)
def test_a_glob_lists_from_its_literal_folder(pattern: str, root: str) -> None:
    assert data._literal_root(pattern) == root


@pytest.mark.parametrize(
    ("error", "cause", "hint"),
    [
        (FileNotFoundError("Path does not exist 'b/x'"), "no such file or object", "bucket"),
        (
            OSError("AWS Error ACCESS_DENIED during HeadObject operation: No response body."),
            "access denied",
            "AWS_SECRET_ACCESS_KEY",
        ),
        (
            OSError("AWS Error UNKNOWN (HTTP status 400) during HeadObject operation: No response"),
            "access denied",
            "AWS_SESSION_TOKEN",
        ),
        (
            OSError(
                "AWS Error NETWORK_CONNECTION during HeadObject: curlCode: 7, Could not connect"
            ),
            "the store is unreachable",
            "AWS_ENDPOINT_URL",
        ),
        (OSError("Parquet magic bytes not found"), "Parquet magic bytes", "parquet or csv"),
    ],
    ids=["missing", "denied", "bad-token", "unreachable", "not-parquet"],
)
def test_store_errors_say_the_cause_and_what_to_do(error: Exception, cause: str, hint: str) -> None:
    explained = data.explain("s3://b/x", error)
    assert explained.message.startswith("cannot read the evaluation data s3://b/x: ")
    assert cause in explained.message
    assert hint in explained.hint


def test_error_messages_mask_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-123")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "t0ken-value-456")
    explained = data.explain(
        "s3://user:pw@b/x", OSError("signature s3cr3t-value-123 with t0ken-value-456 refused")
    )
    for secret in ("s3cr3t-value-123", "t0ken-value-456", "user:pw"):
        assert secret not in explained.message
        assert secret not in explained.hint


def test_unsupported_schemes_and_empty_matches_are_errors(dataset: Path) -> None:
    with pytest.raises(DataError, match=r"unsupported scheme ftp://"):
        open_source("ftp://host/x.parquet", dataset)
    with pytest.raises(DataError, match="matches no parquet or csv file"):
        open_source("holdout/zone=c*/*.parquet", dataset)
    with pytest.raises(DataError, match="no such file or object"):
        open_source("nowhere/", dataset)


@pytest.mark.parametrize(
    ("data_uri", "error", "cause", "hint"),
    [
        (
            "gs://b/x",
            OSError("UNAVAILABLE: Could not create a OAuth2 access token to authenticate"),
            "access denied",
            "GOOGLE_APPLICATION_CREDENTIALS",
        ),
        ("gs://b/x", OSError("Could not resolve host: storage"), "unreachable", "network"),
        ("hdfs://nn/x", OSError("Unable to load libjvm"), "no Hadoop client", "JAVA_HOME"),
        ("az://c/x", OSError("AuthorizationFailure"), "access denied", "AZURE_STORAGE_ACCOUNT_KEY"),
    ],
    ids=["gcs-credentials", "gcs-unreachable", "hdfs-no-client", "azure-denied"],
)
def test_other_stores_errors_name_their_own_remedy(
    data_uri: str, error: Exception, cause: str, hint: str
) -> None:
    explained = data.explain(data_uri, error)
    assert explained.message.startswith(f"cannot read the evaluation data {data_uri}: ")
    assert cause in explained.message
    assert hint in explained.hint
