"""Gate evidence from MLflow: run metrics, model files, signatures, models and preprocessors,
each read from the registry its side names, through that registry's own connection (base.py:
its URI, its credentials, and the adapter's error mapping). The evaluation itself is
gates/evidence.ModelEvidence's.

Every model, run and file is read from the registry its side names (`Side.registry`: a name in
`registries`; None: this one), with that registry's URI and credentials only: REST stores that
send its credentials (env.own_client), and artifact downloads inside env.credentials_env (MLflow's
artifact repositories read the process's variables). No MLflow global is read or set, so
registries plan concurrently."""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow_gitops.credentials import Credentials
from mlflow_gitops.errors import GitopsError
from mlflow_gitops.gates.evidence import ModelEvidence
from mlflow_gitops.gates.port import GateError, Side
from mlflow_gitops.registry.mlflow.base import Connection
from mlflow_gitops.registry.mlflow.env import credentials_env
from mlflow_gitops.registry.mlflow.errors import kind
from mlflow_gitops.settings import Endpoint


class MlflowEvidence(ModelEvidence):
    """Evidence through MLflow; each model is loaded at most once per process."""

    def __init__(
        self,
        where: str | Endpoint,
        credentials: Credentials | None = None,
        registries: Mapping[str, Endpoint] | None = None,
    ) -> None:
        """`where`: this registry (an Endpoint, or a tracking URI with `credentials`);
        `registries`: the others of the plan, by name (the sources of copies)."""
        super().__init__()
        own = where if isinstance(where, Endpoint) else Endpoint(where, "", credentials)
        self.where: dict[str | None, Endpoint] = {None: own}
        self.where.update(registries or {})
        self.connections: dict[str | None, Connection] = {}
        self.models: dict[tuple[str | None, str], Any] = {}
        self.folders: dict[tuple[str | None, str], Path] = {}
        self.run_ids: dict[tuple[str | None, str], str | None] = {}
        self.preprocessors: dict[tuple[str | None, str | None, str], tuple[Any, bytes]] = {}
        self.loads = 0  # how many models were loaded: 0 when every verdict came from the cache

    def _connection(self, side: Side) -> Connection:
        """The connection to the side's registry, opened on first use."""
        if side.registry not in self.where:
            raise GateError(
                f"the gates cannot read {side.uri} of registry '{side.registry}': it is not "
                "among the registries of this plan",
                "declare the registry under registries: in the root file",
            )
        if side.registry not in self.connections:
            try:
                self.connections[side.registry] = Connection(self.where[side.registry])
            except GitopsError as exc:
                raise GateError(exc.message, exc.hint) from None
        return self.connections[side.registry]

    @contextmanager
    def _mapped(self, conn: Connection, doing: str, at: str | None = None) -> Iterator[None]:
        """The adapter's error mapping ("cannot <doing> <uri>: ..."), as the gate's failure;
        `at`: the URI called (default: the registry URI)."""
        try:
            yield
        except GitopsError as exc:
            raise GateError(exc.message, exc.hint) from None
        except Exception as exc:
            error = conn._translate(exc, doing, at=at)
            raise GateError(error.message, error.hint) from None

    def _run_id(self, side: Side) -> str | None:
        """The side's run: as the plan read it, or for a version of another registry (the
        source of a copy), as that registry tells."""
        if side.run_id or side.registry is None or not side.uri.startswith("models:/"):
            return side.run_id
        key = (side.registry, side.uri)
        if key not in self.run_ids:
            conn = self._connection(side)
            model, _, version = side.uri[len("models:/") :].rpartition("/")
            with self._mapped(conn, f"read {side.uri} in registry '{side.registry}' at"):
                conn.calls += 1
                mv = conn.writer.get_model_version(model, version)
            self.run_ids[key] = mv.run_id or None
        return self.run_ids[key]

    def run_metric(self, side: Side, key: str) -> float | None:
        run_id = self._run_id(side)
        if not run_id:
            raise GateError("the version has no source run, so it has no run metrics")
        conn = self._connection(side)
        with self._mapped(conn, f"read run {run_id} at", at=conn.tracking_uri):
            conn.calls += 1
            metrics = conn.client.get_run(run_id).data.metrics
        value = metrics.get(key)
        return None if value is None else float(value)

    def download(self, side: Side, path: str = "", doing: str = "download") -> Path:
        """The model's artifact folder (or one file of it) on local disk: read in place when the
        registry stores it on this machine (a file: location, never written to), else downloaded
        from its registry with that registry's credentials; the whole folder at most once."""
        from mlflow.artifacts import download_artifacts

        key = (side.registry, side.uri)
        if key in self.folders:
            return self.folders[key] / path
        conn = self._connection(side)
        with self._mapped(conn, f"{doing} the model {side.uri} from"):
            location = side.uri
            if side.uri.startswith("models:/"):
                model, _, version = side.uri[len("models:/") :].rpartition("/")
                conn.calls += 1
                location = str(conn.writer.get_model_version_download_uri(model, version))
            if (here := in_place(location, path)) is not None:
                self.folders[key] = here
                return here / path
            if path:
                location = f"{location.rstrip('/')}/{path}"
            conn.calls += 1
            with credentials_env(conn.credentials):
                local = Path(
                    download_artifacts(
                        artifact_uri=location,
                        dst_path=tempfile.mkdtemp(),
                        tracking_uri=conn.tracking_uri,
                        registry_uri=conn.uri,  # a models:/ location (2.x) is resolved there
                    )
                )
        if not path:
            self.folders[key] = local
        return local

    def has_signature(self, side: Side) -> bool:
        from mlflow.models import Model

        mlmodel = self.download(side, "MLmodel", "read")
        try:
            return Model.load(str(mlmodel)).signature is not None
        except Exception as exc:
            raise GateError(f"cannot read the model {side.uri}: {str(exc)[:300]}") from None

    def load_model(self, side: Side) -> Any:
        """The side's pyfunc model, from its own registry only."""
        key = (side.registry, side.uri)
        if key not in self.models:
            import mlflow.pyfunc

            folder = self.download(side)
            try:
                # suppress_warnings: no dependency-mismatch check (the installed version of every
                # requirement read from its metadata, for a warning MLflow's logger, quieted to
                # errors by the connection, would not show); the model and its predictions are
                # the same
                self.models[key] = mlflow.pyfunc.load_model(str(folder), suppress_warnings=True)
            except Exception as exc:
                raise GateError(
                    f"cannot load the model {side.uri}: {type(exc).__name__}: {str(exc)[:300]}",
                    "check that its artifacts exist and that its library versions match this environment",
                ) from None
            self.loads += 1
        return self.models[key]

    def load_preprocessor(self, side: Side, artifact: str) -> tuple[Any, bytes]:
        """The unpickled preprocessor and its file's bytes, from the side's run only."""
        run_id = self._run_id(side)
        key = (side.registry, run_id, artifact)
        if key not in self.preprocessors:
            if not run_id:
                raise GateError(f"the model {side.uri} has no source run to take {artifact} from")
            raw = self._run_artifact(side, run_id, artifact)
            try:
                loaded = pickle.loads(raw)  # a run of a registry of this plan only
            except Exception as exc:
                raise GateError(f"cannot unpickle {artifact} of run {run_id}: {exc}") from None
            self.preprocessors[key] = (loaded, raw)
        return self.preprocessors[key]

    def _run_artifact(self, side: Side, run_id: str, artifact: str) -> bytes:
        """The bytes of one artifact of the run: read in place when the run's artifacts are on
        this machine (a file: location), else downloaded with its registry's credentials."""
        conn = self._connection(side)
        try:
            conn.calls += 1
            root = conn.client.get_run(run_id).info.artifact_uri
            if (here := in_place(root, artifact)) is not None:
                return (here / artifact).read_bytes()
            with tempfile.TemporaryDirectory() as tmp:
                conn.calls += 1
                with credentials_env(conn.credentials):
                    local = conn.client.download_artifacts(run_id, artifact, tmp)
                return Path(local).read_bytes()
        except Exception as exc:
            if kind(exc) != "other":  # refused credentials or permission, unreachable
                error = conn._translate(
                    exc, f"download {artifact} of run {run_id} from", at=conn.tracking_uri
                )
                raise GateError(error.message, error.hint) from None
            raise GateError(
                f"run {run_id} has no artifact {artifact}",
                "log the fitted preprocessor with the run, or remove preprocessor: from the gate",
            ) from None


def in_place(location: str, path: str = "") -> Path | None:
    """The local folder of a `file:` artifact location whose `path` (a file or folder below it,
    "" for the folder itself) exists on this machine: read there, never copied nor written.
    None: another scheme (downloaded as usual), or nothing there."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(location)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    folder = Path(unquote(parts.path))
    target = (folder / path).resolve()
    if not target.is_relative_to(folder.resolve()) or not target.exists():
        return None  # outside the artifacts (a path with ..), or missing: MLflow's download says
    return folder
