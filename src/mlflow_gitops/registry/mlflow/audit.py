"""The audit record's primitives on MLflow (the sequence is registry/audit.py): one run per
apply in the registry's audit experiment (Connection.audit_experiment, in the tracking server),
its tags, and JSON files among its artifacts."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from mlflow_gitops.record.run import model_filter
from mlflow_gitops.registry.audit import StoredRun
from mlflow_gitops.registry.mlflow.base import Connection
from mlflow_gitops.registry.mlflow.env import credentials_env

RUN_TAGS_PER_CALL = 100  # MLflow's limit of tags per log_batch
RUNS_PAGE = 1000


class RecordPrimitives(Connection):
    """registry/audit.RecordStore over MLflow's runs, in the tracking server."""

    def _record(self, doing: str) -> AbstractContextManager[None]:
        """The error mapping of a call on the audit record: it names the experiment and the
        tracking server."""
        where = f"{doing} (experiment {self.audit_experiment}) at"
        return self._errors(where, at=self.tracking_uri)

    def _finishing(self, run_id: str) -> AbstractContextManager[None]:
        return self._record(f"finish the audit run {run_id}")

    def open_run(self, name: str, started_at_ms: int, tags: Mapping[str, str]) -> str:
        with self._record("write the audit record"):
            experiment = self._experiment(
                self.audit_experiment, "the audit experiment", create=True
            )
            assert experiment is not None
            self.calls += 1
            # create-run takes any number of tags in one request (log_batch takes 100)
            run = self.client.create_run(
                experiment, start_time=started_at_ms, tags=dict(tags), run_name=name
            )
        return str(run.info.run_id)

    def log_run_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in tags.items()]
        with self._finishing(run_id):
            for i in range(0, len(items), RUN_TAGS_PER_CALL):
                self.calls += 1
                self.client.log_batch(run_id, tags=items[i : i + RUN_TAGS_PER_CALL])

    def log_documents(self, run_id: str, documents: Mapping[str, Any]) -> None:
        with self._finishing(run_id), tempfile.TemporaryDirectory() as folder:
            for name, doc in documents.items():
                with open(os.path.join(folder, name), "w", encoding="utf-8") as fh:
                    json.dump(doc, fh, indent=2, sort_keys=True)
            self.calls += 1 + len(documents)  # the run's artifact location, one upload per file
            # the files travel through MLflow's artifact repositories, which read the
            # credential variables: this registry's own are set around the upload only
            with credentials_env(self.credentials):
                self.client.log_artifacts(run_id, folder)

    def end_run(self, run_id: str, ok: bool) -> None:
        from mlflow.entities import RunStatus

        # MLflow 3 prints the run's URL to stdout when a run ends on a server: not in our output
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        with self._finishing(run_id):
            self.calls += 1
            status = RunStatus.FINISHED if ok else RunStatus.FAILED
            self.client.set_terminated(run_id, RunStatus.to_string(status))

    def stored_runs(self, names: Sequence[str]) -> dict[str, list[StoredRun]]:
        """One paged search_runs per model, filtered on the model's tag (MLflow 2.x and 3)."""
        out: dict[str, list[StoredRun]] = {}
        with self._record("read the audit record"):
            experiment = self._experiment(
                self.audit_experiment, "the audit experiment", create=False
            )
            if experiment is None:
                return out
            for name in names:
                runs = out.setdefault(name, [])
                token = None
                while True:
                    self.calls += 1
                    page = self.client.search_runs(
                        [experiment],
                        filter_string=model_filter(name),
                        max_results=RUNS_PAGE,
                        order_by=["attributes.start_time ASC"],
                        page_token=token,
                    )
                    runs += [
                        StoredRun(
                            run_id=str(r.info.run_id),
                            started_at=int(r.info.start_time or 0),
                            status=str(r.info.status),
                            tags=dict(r.data.tags),
                        )
                        for r in page
                    ]
                    token = page.token
                    if not token:
                        break
        return out

    def read_document(self, run_id: str, name: str) -> Any:
        with self._record("read the audit record"), tempfile.TemporaryDirectory() as folder:
            self.calls += 1
            with credentials_env(self.credentials):  # an artifact repository: see log_documents
                path = self.client.download_artifacts(run_id, name, folder)
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
