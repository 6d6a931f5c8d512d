"""Databricks workspaces for the tests, without Databricks: fakes of Unity Catalog's model
registry (tests/uc/fake_uc.py), a real `mlflow server` per workspace as its tracking API, the
S3-compatible server (tests/s3server.py) as UC's managed storage and the tracking artifacts'
store, and a Databricks profile file naming them.

    with uc_world(tmp_path, workspaces=("prod", "dev")) as world:
        os.environ.update(world.env())            # or monkeypatch: see the uc_env fixture
        client = world.client("prod")             # MlflowClient(databricks://prod, databricks-uc://prod)
        world.metastore("prod").seed([...], owner=world.user("alice"))

Profiles in the file (DATABRICKS_CONFIG_FILE): `<workspace>` is alice on that workspace (each
workspace has its own tokens), `<workspace>-<user>` any user, e.g. `prod-bob`. Every token maps to
one user; a model's owner is the user who created it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.s3server import REGION, MotoServer
from tests.servers import MlflowServer
from tests.uc.fake_uc import FakeWorkspace, Metastore, StorageCredentials

BUCKET = "uc-fake"
USERS = ("alice", "bob")
DOMAIN = "example.com"
# variables that would point MLflow or the Databricks SDK at another workspace than the profile
_FOREIGN = (
    "DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CLIENT_ID",
    "DATABRICKS_CLIENT_SECRET", "DATABRICKS_AUTH_TYPE", "DATABRICKS_USERNAME",
    "DATABRICKS_PASSWORD", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
    "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI",
)  # fmt: skip


@dataclass
class UcWorld:
    """Fake Databricks workspaces with their tracking servers, storage and profile file."""

    s3: MotoServer
    config_file: Path
    workspaces: dict[str, FakeWorkspace]
    trackers: dict[str, MlflowServer] = field(default_factory=dict)
    # (workspace, user) -> token (kept out of repr: a failing test prints its fixtures)
    tokens: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    @staticmethod
    def user(name: str) -> str:
        """A user's id as the fake knows it (`alice` -> `alice@example.com`)."""
        return name if "@" in name else f"{name}@{DOMAIN}"

    def workspace(self, name: str = "prod") -> FakeWorkspace:
        return self.workspaces[name]

    def metastore(self, name: str = "prod") -> Metastore:
        return self.workspaces[name].metastore

    @staticmethod
    def profile(workspace: str = "prod", user: str = "alice") -> str:
        """The profile name of `user` on `workspace` in the config file."""
        return workspace if user == "alice" else f"{workspace}-{user}"

    def uris(self, workspace: str = "prod", user: str = "alice") -> tuple[str, str]:
        """(tracking URI, registry URI) of `user` on `workspace`."""
        p = self.profile(workspace, user)
        return f"databricks://{p}", f"databricks-uc://{p}"

    def env(self) -> dict[str, str]:
        """What a process needs to reach the workspaces: the profile file, the S3 endpoint (UC's
        temporary credentials carry keys, never an endpoint: MLflow takes it from
        MLFLOW_S3_ENDPOINT_URL) and keys for the tracking server's artifacts on that server."""
        return {
            "DATABRICKS_CONFIG_FILE": str(self.config_file),
            "MLFLOW_S3_ENDPOINT_URL": self.s3.endpoint,
            "AWS_ACCESS_KEY_ID": self.s3.reader["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": self.s3.reader["AWS_SECRET_ACCESS_KEY"],
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    @staticmethod
    def foreign_variables() -> tuple[str, ...]:
        """Variables to unset beside env(), so nothing else decides where a client goes."""
        return _FOREIGN

    def client(self, workspace: str = "prod", user: str = "alice") -> Any:
        """MLflow's own client for `user` on `workspace` (env() must be in os.environ)."""
        from mlflow import MlflowClient

        tracking, registry = self.uris(workspace, user)
        return MlflowClient(tracking_uri=tracking, registry_uri=registry)


@contextmanager
def uc_world(
    workdir: Path,
    *,
    workspaces: Sequence[str] = ("prod",),
    users: Sequence[str] = USERS,
    tracking: bool = True,
    shared_metastore: bool = False,
    latency_s: float = 0.0,
) -> Iterator[UcWorld]:
    """Start the S3 server, then per workspace a fake (and, with `tracking`, an `mlflow server`
    whose artifacts go to s3://uc-fake/tracking-<workspace>/), write the profile file; stop
    everything on exit. `shared_metastore`: the workspaces see one Unity Catalog metastore (as
    workspaces attached to one metastore do); otherwise each has its own."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        s3 = stack.enter_context(MotoServer(workdir / "s3"))
        s3.client("s3").create_bucket(Bucket=BUCKET)
        storage = StorageCredentials(
            bucket=BUCKET,
            access_key_id=s3.reader["AWS_ACCESS_KEY_ID"],
            secret_access_key=s3.reader["AWS_SECRET_ACCESS_KEY"],
        )
        shared = Metastore(storage) if shared_metastore else None
        config_file = workdir / "databrickscfg"
        world = UcWorld(s3=s3, config_file=config_file, workspaces={})
        server_env = {
            "MLFLOW_S3_ENDPOINT_URL": s3.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            **s3.reader,
        }
        for ws_name in workspaces:
            tracker = None
            if tracking:
                tracker = stack.enter_context(
                    MlflowServer(
                        f"sqlite:///{workdir}/tracking-{ws_name}.db",
                        workdir / f"tracking-{ws_name}",
                        env=server_env,
                        workers=1,
                        extra_args=[
                            "--default-artifact-root",
                            f"s3://{BUCKET}/tracking-{ws_name}",
                            "--no-serve-artifacts",
                        ],
                    )
                )
                world.trackers[ws_name] = tracker
            tokens = {}
            for user in users:
                token = f"dapi{ws_name}{user}{secrets.token_hex(12)}"
                world.tokens[(ws_name, user)] = token
                tokens[token] = world.user(user)
            fake = FakeWorkspace(
                shared or Metastore(storage),
                tokens,
                tracking_url=tracker.uri if tracker else None,
                name=ws_name,
                latency_s=latency_s,
            )
            world.workspaces[ws_name] = stack.enter_context(fake)
        lines = []
        for (ws_name, user), token in world.tokens.items():
            url = world.workspaces[ws_name].url
            lines += [f"[{world.profile(ws_name, user)}]", f"host = {url}", f"token = {token}", ""]
        config_file.write_text("\n".join(lines))
        config_file.chmod(0o600)
        yield world


@pytest.fixture(scope="module")
def uc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UcWorld]:
    """One fake workspace `prod` (users alice and bob) with its tracking server, per module."""
    with uc_world(tmp_path_factory.mktemp("uc")) as world:
        yield world


@pytest.fixture(scope="module")
def uc_two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UcWorld]:
    """Two fake workspaces, `prod` and `dev`, each with its own tokens, metastore and tracking
    server, in one profile file (profiles `prod`, `prod-bob`, `dev`, `dev-bob`), per module."""
    with uc_world(tmp_path_factory.mktemp("uc-two"), workspaces=("prod", "dev")) as world:
        yield world


def apply_env(world: UcWorld, monkeypatch: pytest.MonkeyPatch) -> UcWorld:
    """Set `world`'s variables for one test, and unset any other Databricks or MLflow target."""
    for key in UcWorld.foreign_variables():
        monkeypatch.delenv(key, raising=False)
    for key, value in world.env().items():
        monkeypatch.setenv(key, value)
    forget_aws_credentials()
    return world


def forget_aws_credentials() -> None:
    """Drop every AWS credential this process read from the environment. boto3's default
    session (what `boto3.client(...)` without keys uses, as MLflow's S3 artifact repository
    does) loads the credential chain once and keeps it for the process: an earlier module's S3
    server keys, read from its AWS_ACCESS_KEY_ID, would be sent to this world's server
    (InvalidAccessKeyId). MLflow also caches its S3 clients per endpoint with those keys."""
    import boto3
    from mlflow.store.artifact.s3_artifact_repo import _cached_get_s3_client

    boto3.DEFAULT_SESSION = None
    _cached_get_s3_client.cache_clear()


@pytest.fixture
def uc_env(uc: UcWorld, monkeypatch: pytest.MonkeyPatch) -> UcWorld:
    """`uc`, with its variables set for this test (and any other Databricks target unset)."""
    return apply_env(uc, monkeypatch)


@pytest.fixture
def uc_two_env(uc_two: UcWorld, monkeypatch: pytest.MonkeyPatch) -> UcWorld:
    """`uc_two`, with its variables set for this test."""
    return apply_env(uc_two, monkeypatch)
