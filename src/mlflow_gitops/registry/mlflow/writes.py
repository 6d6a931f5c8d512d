"""Writing to an MLflow registry: models, versions, tags, descriptions, stages and aliases."""

from __future__ import annotations

import uuid
from contextlib import suppress
from typing import Any

from mlflow_gitops.errors import PermissionDenied, RegistryError
from mlflow_gitops.record import REGISTRATION_TAG
from mlflow_gitops.registry.mlflow.base import quote
from mlflow_gitops.registry.mlflow.reads import VERSIONS_PAGE
from mlflow_gitops.registry.mlflow.unity import UC_PAGE, Unity

REGISTER_WAIT_S = 300  # until a new version is READY


class Writes(Unity):
    """Every change the applier makes, one MLflow request each (registering: a few)."""

    def create_model(self, name: str) -> None:
        self._call("create model", name, lambda: self.client.create_registered_model(name))

    def register_version(self, name: str, source: str, run_id: str | None) -> int:
        import mlflow

        # MLflow retries every method, POST included: when the answer to create-model-version is
        # lost (dropped connection, timeout) the retry registers the source a second time, and the
        # file's reference then matches two versions for ever. A one-off token tag marks every copy
        # this call made; the copies other than the one MLflow returned are deleted.
        token = uuid.uuid4().hex
        # mlflow.register_model resolves runs:/<id>/<path> the MLflow 3 way (run artifacts or a
        # logged model) and waits until the version is READY
        number: int | None = None
        denied: PermissionDenied | None = None
        try:

            def register() -> Any:
                # mlflow.register_model talks to the global registry with the variables' creds:
                # both are this registry's for the requests that create the version only; the
                # wait until READY reads through this adapter's own client, outside the lock
                with self.mlflow_globals():
                    mv = mlflow.register_model(
                        source, name, await_registration_for=0, tags={REGISTRATION_TAG: token}
                    )
                self.writer.store._await_model_version_creation(mv, REGISTER_WAIT_S)
                return mv

            mv = self._call("register version", name, register)
            number = int(mv.version)
        except PermissionDenied as exc:
            # MLflow 3 then links the new version on the run's logged model, which needs EDIT on
            # the run's experiment: a version this call made means only that link is missing
            denied = exc
        except RegistryError as exc:
            # no MLmodel at runs:/<id>/<path>: MLflow 3 then looks for a logged model, through an
            # endpoint MLflow 2.x servers do not have (404)
            if "/logged-models" in str(exc.__cause__) and "404" in str(exc.__cause__):
                raise RegistryError(
                    # short: the apply's result shows the first 200 characters
                    "the run has no model (MLmodel) at that artifact path; check the path after "
                    "the run id in the `run:` entry (default `model`). An MLflow 2.x server has "
                    "no logged models to look in",
                ) from exc
            raise
        with self._errors("register version at"):
            made = self._made_by(name, token, run_id)
        if number is None:
            if denied is not None and not made:
                raise denied
            number = made[0]
        copies = [v for v in made if v != number]
        for copy in copies:
            self.delete_version(name, copy)
        # deleting a version tag needs MANAGE; with EDIT the one-off token stays (harmless)
        with suppress(PermissionDenied):
            self.delete_version_tag(name, number, REGISTRATION_TAG)
        return number

    def _made_by(self, name: str, token: str, run_id: str | None) -> list[int]:
        """The versions of `name` that carry this registration's token. Unity Catalog's version
        search returns no tags: there, the versions of the same run are read one by one."""
        if not self.unity_catalog:
            return sorted(
                int(v.version)
                for v in self._pages(
                    self.client.search_model_versions, f"name = {quote(name)}", VERSIONS_PAGE
                )
                if (v.tags or {}).get(REGISTRATION_TAG) == token
            )
        same_run = [
            int(v.version)
            for v in self._pages(
                self.writer.store.search_model_versions, f"name = {quote(name)}", UC_PAGE
            )
            if run_id is None or v.run_id == run_id
        ]
        made = []
        for number in same_run:
            self.calls += 1
            mv = self.writer.get_model_version(name, str(number))
            if (mv.tags or {}).get(REGISTRATION_TAG) == token:
                made.append(number)
        return sorted(made)

    def set_model_description(self, name: str, text: str) -> None:
        self._call("set description", name, lambda: self.writer.update_registered_model(name, text))

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self._call("set tag", name, lambda: self.writer.set_registered_model_tag(name, key, value))

    def delete_model_tag(self, name: str, key: str) -> None:
        self._call(
            "delete model tag", name, lambda: self.writer.delete_registered_model_tag(name, key)
        )

    def set_version_description(self, name: str, version: int, text: str) -> None:
        self._call(
            "set description",
            name,
            lambda: self.writer.update_model_version(name, str(version), text),
            version,
        )

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self._call(
            "set tag",
            name,
            lambda: self.writer.set_model_version_tag(name, str(version), key, value),
            version,
        )

    def delete_version_tag(self, name: str, version: int, key: str) -> None:
        self._call(
            "delete version tag",
            name,
            lambda: self.writer.delete_model_version_tag(name, str(version), key),
            version,
        )

    def transition_stage(
        self, name: str, version: int, stage: str, archive_others: bool = False
    ) -> None:
        if self.unity_catalog:
            # validate refuses stages in a UC registry's file; this never reaches MLflow's client
            raise RegistryError(
                f"Unity Catalog has no stages: cannot move {name} version {version} to {stage}",
                "use aliases (`aliases: {champion: <version>}`) instead of `stage:` for a Unity "
                "Catalog registry",
            )
        # archiving is planned (archive_previous); the planner asks for archive_others only when
        # every other holder leaves the stage in the same plan
        self._call(
            "transition stage",
            name,
            lambda: self.writer.transition_model_version_stage(
                name, str(version), stage, archive_existing_versions=archive_others
            ),
            version,
        )

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._call(
            "set alias",
            name,
            lambda: self.writer.set_registered_model_alias(name, alias, str(version)),
        )

    def delete_alias(self, name: str, alias: str) -> None:
        self._call(
            "delete alias", name, lambda: self.writer.delete_registered_model_alias(name, alias)
        )

    def delete_version(self, name: str, version: int) -> None:
        self._call(
            "delete version",
            name,
            lambda: self.writer.delete_model_version(name, str(version)),
            version,
        )
