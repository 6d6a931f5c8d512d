"""Where the evaluation data lives: a local path, file://, s3://, gs://, abfs:// or az://, hdfs://;
one file, a directory or a glob of files (a partitioned dataset). Listed and identified without
reading data; streamed in batches through pyarrow.dataset, never downloaded whole.

Credentials come only from each store's standard environment and are never part of a message."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.secrets import redact, register_secrets

GLOB_CHARS = "*?["
CSV_SUFFIXES = (".csv", ".csv.gz")
# the identity fields a store may report for an object, in order of preference
IDENTITY_KEYS = ("ETag", "etag", "generation", "Generation", "VersionId", "Last-Modified")
LOCAL_SCHEMES = ("", "file")
# how stores word a refused read (S3's HEAD answers carry no body: only the status is known)
DENIED = (
    "access_denied", "accessdenied", "access denied", "forbidden", "status 403", "status 401",
    "invalidaccesskeyid", "signaturedoesnotmatch", "invalidtoken", "expiredtoken",
    "unauthorized", "permission denied", "authorizationfailure",
    "status 400) during headobject",  # S3: an expired or invalid session token, on a HEAD
    "oauth2 access token",  # GCS: no usable credentials
    "unauthenticated",  # GCS: an anonymous caller (STORAGE_EMULATOR_HOST) on a private bucket
    "authenticationfailed", "authorizationpermissionmismatch",  # Azure: a wrong key or SAS
    "authenticationexception",  # Azure: no credential at all
)  # fmt: skip
UNREACHABLE = (
    "network_connection", "could not connect", "could not resolve", "timed out", "timeout",
    "connection refused",
)  # fmt: skip
REMOTE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "az", "hdfs")


STREAM_ROWS = 65_536


def data_location(data: str, folder: Path) -> str:
    """A path relative to registry.yaml's folder, or a URI as written."""
    if "://" in data:
        return data
    return str((folder / data).resolve())


class DataError(GitopsError):
    """The data cannot be listed or read; the gate fails with the cause and what to do."""


@dataclass(frozen=True)
class DataSource:
    """The files of `data:` on their filesystem, with the folder hive partitions are read below."""

    data: str  # as written in registry.yaml (for messages)
    scheme: str  # "" for a local path
    filesystem: Any  # a pyarrow.fs.FileSystem
    files: tuple[Any, ...]  # pyarrow.fs.FileInfo of every file, sorted by path
    base: str  # partition_base_dir: key=value folders below it become columns

    @property
    def local(self) -> bool:
        return self.scheme in LOCAL_SCHEMES

    @property
    def csv(self) -> bool:
        return all(f.path.lower().endswith(CSV_SUFFIXES) for f in self.files)


def location(data: str, folder: Path) -> tuple[str, str]:
    """(scheme, path as the filesystem names it): local paths are relative to registry.yaml."""
    scheme = urlsplit(data).scheme.lower() if "://" in data else ""
    if scheme == "":
        return "", str((folder / data).resolve())
    if scheme == "file":
        return "file", urlsplit(data).path
    if scheme not in REMOTE_SCHEMES:
        raise DataError(
            f"cannot read the evaluation data {redact(data)}: unsupported scheme {scheme}://",
            "use a path relative to registry.yaml, file://, s3://, gs://, abfs://, az:// or hdfs://",
        )
    return scheme, data


def filesystem(scheme: str, uri: str) -> tuple[Any, str]:
    """The pyarrow filesystem for a URI, configured from the store's standard environment."""
    import pyarrow.fs as pafs

    if scheme in LOCAL_SCHEMES:
        return pafs.LocalFileSystem(), uri
    parts = urlsplit(uri)
    if scheme == "s3":
        # pyarrow's from_uri ignores AWS_ENDPOINT_URL: S3-compatible stores need it passed
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        fs = pafs.S3FileSystem(
            endpoint_override=endpoint or None,
            region=region or None,
            connect_timeout=5,
            request_timeout=30,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=2),
        )  # keys and session token: the AWS SDK's default chain (AWS_ACCESS_KEY_ID, ...)
        return fs, parts.netloc + parts.path
    if scheme in ("gs", "gcs"):
        return _gcs(), parts.netloc + parts.path
    if scheme in ("az", "abfs", "abfss"):
        return _azure(uri)
    # hdfs://
    fs, path = pafs.FileSystem.from_uri(uri)
    return fs, path


def _gcs() -> Any:
    """GCS with the machine's default credentials (GOOGLE_APPLICATION_CREDENTIALS, ...), or, with
    STORAGE_EMULATOR_HOST set (the client libraries' convention), that emulator, anonymously.
    Retries are bounded, so an unreachable endpoint fails the gate instead of hanging the plan."""
    import pyarrow.fs as pafs

    retries = timedelta(seconds=20)
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "").strip()
    if not emulator:
        return pafs.GcsFileSystem(retry_time_limit=retries)
    split = urlsplit(emulator if "://" in emulator else f"http://{emulator}")
    return pafs.GcsFileSystem(
        anonymous=True,
        endpoint_override=split.netloc,
        scheme=split.scheme or "http",
        retry_time_limit=retries,
    )


# the account and key every Azurite (and the older Storage Emulator) accepts, published by
# Microsoft: what a connection string's UseDevelopmentStorage=true stands for
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURE_HINT = (
    "set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with "
    "AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN (or the AZURE_CLIENT_ID/"
    "AZURE_TENANT_ID/AZURE_CLIENT_SECRET of a service principal)"
)


def _azure(uri: str) -> tuple[Any, str]:
    """Azure Blob / ADLS Gen2: `az://container/path` and `abfs[s]://container/path` name the
    account in the environment, `abfs[s]://container@account.dfs.core.windows.net/path` in the
    URI. Credentials and endpoints: AZURE_STORAGE_CONNECTION_STRING (its BlobEndpoint may point
    at Azurite), else AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or
    AZURE_STORAGE_SAS_TOKEN, else Azure's default credential (a service principal, ...)."""
    import pyarrow.fs as pafs

    parts = urlsplit(uri)
    container, _, host = parts.netloc.partition("@")
    settings = _connection_string()
    named = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME", "").strip()
    account = host.split(".")[0] if host else settings.get("accountname") or named
    if not account:
        raise DataError(
            f"cannot read the evaluation data {redact(uri)}: it names no storage account",
            AZURE_HINT,
        )
    options: dict[str, Any] = {}
    key = sas = None
    if settings.get("accountname", "").lower() == account.lower():
        options |= _endpoints(account, settings)
        key, sas = settings.get("accountkey"), settings.get("sharedaccesssignature")
    # a connection string without a key or SAS gives the endpoint only; variables naming
    # another account do not hold this one's key
    if not (key or sas) and (not named or named.lower() == account.lower()):
        key = os.environ.get("AZURE_STORAGE_ACCOUNT_KEY")
        sas = os.environ.get("AZURE_STORAGE_SAS_TOKEN")
    if host and "blob_storage_authority" not in options:
        suffix = host.split(".", 2)[2] if host.count(".") >= 2 else "core.windows.net"
        options |= {"blob_storage_authority": f".blob.{suffix}",
                    "dfs_storage_authority": f".dfs.{suffix}"}  # fmt: skip
    if key:
        options["account_key"] = key
    elif sas:
        options["sas_token"] = "?" + sas.lstrip("?")
    register_secrets(v for v in (key, sas) if v)
    return pafs.AzureFileSystem(account_name=account, **options), container + parts.path


def _connection_string() -> dict[str, str]:
    """AZURE_STORAGE_CONNECTION_STRING as lower-cased keys (`Key=value;...`); UseDevelopmentStorage
    expands to the local emulator's account, key and endpoint."""
    text = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
    settings = {}
    for item in text.split(";"):
        name, sep, value = item.strip().partition("=")
        if sep:
            settings[name.strip().lower()] = value.strip()
    if settings.get("usedevelopmentstorage", "").lower() == "true":
        proxy = settings.get("developmentstorageproxyuri", "http://127.0.0.1").rstrip("/")
        settings = {"accountname": DEV_ACCOUNT, "accountkey": DEV_KEY,
                    "blobendpoint": f"{proxy}:10000/{DEV_ACCOUNT}"}  # fmt: skip
    return settings


def _endpoints(account: str, settings: dict[str, str]) -> dict[str, str]:
    """pyarrow's authority and scheme of the blob and dfs endpoints of a connection string: an
    authority starting with "." follows the account name (`account.blob.core.windows.net`), any
    other is a host[:port] whose first path segment is the account (Azurite)."""
    protocol = settings.get("defaultendpointsprotocol", "https")
    suffix = settings.get("endpointsuffix", "core.windows.net")
    blob = settings.get("blobendpoint", "")
    # no DfsEndpoint: the blob endpoint's twin (Azurite serves both on one port)
    endpoints = {
        "blob": blob,
        "dfs": settings.get("dfsendpoint") or blob.replace(".blob.", ".dfs."),
    }
    out = {}
    for service, endpoint in endpoints.items():
        split = urlsplit(endpoint)
        authority = split.netloc or f"{account}.{service}.{suffix}"
        if authority.lower().startswith(f"{account.lower()}."):
            authority = authority[len(account) :]
        out[f"{service}_storage_authority"] = authority
        out[f"{service}_storage_scheme"] = split.scheme or protocol
    return out


def open_source(data: str, folder: Path) -> DataSource:
    """List the files of `data:` (metadata only: no data is read)."""
    scheme, where = location(data, folder)
    try:
        fs, path = filesystem(scheme, where)
        files, base = _list(fs, path)
    except DataError:
        raise
    except store_errors() as exc:
        raise explain(data, exc) from None
    if not files:
        raise DataError(
            f"cannot read the evaluation data {redact(data)}: it matches no parquet or csv file",
            _where_hint(scheme),
        )
    return DataSource(data, scheme, fs, tuple(files), base)


def _list(fs: Any, path: str) -> tuple[list[Any], str]:
    import pyarrow.fs as pafs

    path = path.rstrip("/") or "/"
    if any(c in path for c in GLOB_CHARS):
        root = _literal_root(path)
        listed = fs.get_file_info(pafs.FileSelector(root, recursive=True))
        files = [f for f in listed if f.is_file and fnmatch.fnmatchcase(f.path, path)]
        return sorted(files, key=lambda f: f.path), _partition_base(root)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"Path does not exist '{path}'")
    if info.type == pafs.FileType.File:
        return [info], posixpath.dirname(path)
    listed = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    files = [
        f
        for f in listed
        if f.is_file
        and not any(p.startswith(("_", ".")) for p in f.path[len(path) :].split("/"))
        and f.path.lower().endswith((".parquet", ".parq", *CSV_SUFFIXES))
    ]
    return sorted(files, key=lambda f: f.path), path


def _literal_root(pattern: str) -> str:
    """The folder a glob lists: its segments before the first wildcard."""
    segments = pattern.split("/")
    literal = []
    for s in segments[:-1]:
        if any(c in s for c in GLOB_CHARS):
            break
        literal.append(s)
    return "/".join(literal) or "/"


def _partition_base(root: str) -> str:
    """Hive folders (key=value) already in the glob's literal part are partitions too."""
    segments = root.split("/")
    for i, s in enumerate(segments):
        if "=" in s:
            return "/".join(segments[:i]) or "/"
    return root


def identity(source: DataSource) -> str:
    """A digest of every file's identity: for local files their sha256 (as before), for an
    object store what it reports without reading data (ETag or generation, size, mtime)."""
    entries = []
    try:
        for info in source.files:
            name = posixpath.relpath(info.path, source.base)
            if source.local:
                entries.append([name, _sha256(source.filesystem, info.path)])
            else:
                entries.append([name, info.size, info.mtime_ns, *_reported(source, info.path)])
    except store_errors() as exc:
        raise explain(source.data, exc) from None
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def _sha256(fs: Any, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _reported(source: DataSource, path: str) -> list[str]:
    """ETag/generation from the object's metadata: one HEAD request, the body is not read.

    Not on GCS: there pyarrow's file asks for the metadata when opened, but its metadata() (and
    its close) start a download of the object. The listing's `updated` time (to the microsecond,
    new for every write of the object) and size are GCS's identity."""
    if source.scheme in ("gs", "gcs"):
        return []
    with source.filesystem.open_input_file(path) as handle:
        metadata = handle.metadata()
    out = []
    for key in IDENTITY_KEYS:
        value = metadata.get(key) if hasattr(metadata, "get") else None
        if value is not None:
            text = value.decode() if isinstance(value, bytes) else str(value)
            out.append(f"{key}={text}")
    return out


def batches(source: DataSource, rows: int) -> Iterator[Any]:
    """Record batches of at most `rows` rows, file after file, hive partition columns added.

    pyarrow.dataset finds the partitions (and their types); each file is then read with
    ParquetFile.iter_batches, page by page: the dataset scanner decodes whole row groups and
    held twice the memory on a 2-million-row file (bench/gates.py)."""
    try:
        fields, parts = layout(source)
        for part in parts:
            yield from part_batches(source.filesystem, source.csv, part, fields, rows)
    except store_errors() as exc:
        raise explain(source.data, exc) from None


@dataclass(frozen=True)
class Part:
    """One file of the data as the listing found it (path and size: no request to open it) and
    the hive partition values its rows get; plain values, so a Spark task can receive it."""

    path: str
    size: int
    keys: tuple[tuple[str, Any], ...]


def layout(source: DataSource) -> tuple[tuple[Any, ...], tuple[Part, ...]]:
    """The hive partition fields (pyarrow fields, typed over every file of the data) and each
    file with its partition values. Reads at most the first file's footer (the schema)."""
    import pyarrow.dataset as pads

    dataset = pads.dataset(
        [f.path for f in source.files],
        filesystem=source.filesystem,
        format="csv" if source.csv else "parquet",
        partitioning="hive",
        partition_base_dir=source.base,
    )
    sizes = {f.path: f.size for f in source.files}
    parts = tuple(
        Part(f.path, sizes[f.path], tuple(pads.get_partition_keys(f.partition_expression).items()))
        for f in dataset.get_fragments()
    )
    names = dict.fromkeys(k for p in parts for k, _ in p.keys)
    return tuple(dataset.schema.field(n) for n in names), parts


def part_batches(
    fs: Any,
    csv: bool,
    part: Part,
    fields: tuple[Any, ...],
    rows: int,
    share: tuple[int, int] = (0, 1),
) -> Iterator[Any]:
    """One file's record batches with the partition columns added. `share` (j, m): only the
    row groups whose index is j modulo m (m tasks reading one parquet file between them)."""
    import pyarrow as pa

    keys = dict(part.keys)
    for batch in _file_batches(fs, csv, part, rows, share):
        missing = [f for f in fields if f.name not in batch.schema.names]
        if not missing:
            yield batch
            continue
        columns = [
            pa.repeat(pa.scalar(keys.get(f.name), type=f.type), batch.num_rows) for f in missing
        ]
        yield pa.RecordBatch.from_arrays(
            [*batch.columns, *columns], names=[*batch.schema.names, *(f.name for f in missing)]
        )


def _file_batches(
    fs: Any, csv: bool, part: Part, rows: int, share: tuple[int, int]
) -> Iterator[Any]:
    if csv:
        import pyarrow.csv as pacsv

        if share[0] != 0:
            return  # a csv file is not split: the first share reads it whole
        with fs.open_input_stream(part.path, compression="detect") as stream:
            yield from pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=1 << 22))
        return
    import pyarrow.parquet as pq

    with fs.open_input_file(part.path) as handle:
        if handle.size() != part.size:  # replaced since it was listed (and identified)
            raise OSError(f"{part.path} changed since it was listed: plan again")
        # pre_buffer would keep every row group read so far: memory grew with the file
        parquet = pq.ParquetFile(handle, pre_buffer=False, buffer_size=1 << 20)
        j, m = share
        groups = [g for g in range(parquet.num_row_groups) if g % m == j]
        if groups:
            yield from parquet.iter_batches(batch_size=rows, row_groups=groups)


# the standard variables each store's filesystem is built from here: what a Spark task needs to
# build the same filesystem (secrets among them: they travel inside the task, never in a conf)
STORE_VARIABLES = {
    "s3": (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
        "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
    ),
    "gs": ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST"),
    "az": (
        "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_STORAGE_CONNECTION_STRING", "AZURE_CLIENT_ID", "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
    ),
}  # fmt: skip
STORE_FAMILY = {"s3": "s3", "gs": "gs", "gcs": "gs", "az": "az", "abfs": "az", "abfss": "az"}


def store_environment(scheme: str) -> dict[str, str]:
    """This store's standard variables as set in this process (secrets included): with them,
    `filesystem` builds the same filesystem elsewhere. Never to be logged or put in a conf."""
    names = STORE_VARIABLES.get(STORE_FAMILY.get(scheme, ""), ())
    return {n: os.environ[n] for n in names if n in os.environ}


def store_errors() -> tuple[type[BaseException], ...]:
    """What a store's failure raises: pyarrow's own errors are OSError or ValueError, but an
    Azure credential failure is a bare ArrowException."""
    import pyarrow as pa

    return (OSError, ValueError, pa.ArrowException)


def explain(data: str, exc: BaseException) -> DataError:
    """The store's error as a cause and what to do; never a credential."""
    text = redact(str(exc))
    scheme = urlsplit(data).scheme.lower() if "://" in data else ""
    lowered = text.lower()
    shown = redact(data)
    if isinstance(exc, FileNotFoundError) or "does not exist" in lowered or "nosuch" in lowered:
        return DataError(
            f"cannot read the evaluation data {shown}: no such file or object ({text[:200]})",
            _where_hint(scheme),
        )
    if any(s in lowered for s in DENIED):
        return DataError(
            f"cannot read the evaluation data {shown}: access denied ({text[:200]})",
            _credentials_hint(scheme),
        )
    if any(s in lowered for s in UNREACHABLE):
        return DataError(
            f"cannot read the evaluation data {shown}: the store is unreachable ({text[:200]})",
            _endpoint_hint(scheme),
        )
    if scheme == "hdfs" and any(s in lowered for s in ("libjvm", "libhdfs", "hadoop")):
        return DataError(
            f"cannot read the evaluation data {shown}: no Hadoop client ({text[:200]})",
            "hdfs:// needs Java and libhdfs: set JAVA_HOME, HADOOP_HOME and CLASSPATH "
            "(or ARROW_LIBHDFS_DIR)",
        )
    return DataError(
        f"cannot read the evaluation data {shown}: {text[:200]}",
        "data: is parquet or csv: a file, a directory or a glob",
    )


def _where_hint(scheme: str) -> str:
    if scheme in LOCAL_SCHEMES:
        return "the path is relative to registry.yaml's folder"
    return "check the bucket (or container) and the object path"


def _credentials_hint(scheme: str) -> str:
    if scheme == "s3":
        return (
            "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) and that they "
            "may read the bucket"
        )
    if scheme in ("gs", "gcs"):
        return "check GOOGLE_APPLICATION_CREDENTIALS and the account's read access"
    if scheme in ("az", "abfs", "abfss"):
        return (
            "check AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN or the key or "
            "SharedAccessSignature in AZURE_STORAGE_CONNECTION_STRING (or the service "
            "principal's read access)"
        )
    return "check the read permissions of the data"


def _endpoint_hint(scheme: str) -> str:
    if scheme == "s3":
        return "check the endpoint (AWS_ENDPOINT_URL for S3-compatible stores) and the network"
    if scheme in ("gs", "gcs"):
        return "check the network (and STORAGE_EMULATOR_HOST, when it names an emulator)"
    if scheme in ("az", "abfs", "abfss"):
        return "check the network (and the BlobEndpoint in AZURE_STORAGE_CONNECTION_STRING)"
    return "check the network and the store's endpoint"
