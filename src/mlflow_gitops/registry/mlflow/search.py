"""The two searches a registry read makes, each page after page, as values: registered models
(ModelState, their versions left to the read) and model versions (name, VersionState).

Against MLflow's own REST store the answers are decoded straight from their JSON: MLflow's client
turns each answer into protobuf messages and then into entities, which took longer than the
server's answer itself for 20,000 versions (docs/performance.md, section 1a). The request goes
through MLflow's `http_request`, as the store's own call does: the same endpoint, host,
credentials, TLS settings, timeout and retries, and an error answer raises MLflow's own exception
(verify_rest_response). Any other store (SQL, a subclass a plugin or Databricks provides) is asked
through its own methods."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.registry.mlflow.base import pages, version_state

VersionRow = tuple[str, VersionState]
# one filter's rows, all pages; `tick` is called before each request (the caller counts them)
Search = Callable[[str | None, Callable[[], None]], list[Any]]


def model_from_entity(m: Any) -> ModelState:
    """An MLflow RegisteredModel as a ModelState without its versions."""
    return ModelState(
        name=str(m.name),
        description=m.description or "",
        tags=dict(m.tags or {}),
        aliases={a: int(v) for a, v in (m.aliases or {}).items()},
        created_at=int(m.creation_timestamp or 0),
    )


def model_from_json(m: Mapping[str, Any]) -> ModelState:
    """A registered model of a REST answer (MLflow's protobuf as JSON), without its versions."""
    return ModelState(
        name=m["name"],
        description=m.get("description") or "",
        tags={t["key"]: t.get("value", "") for t in m.get("tags", ())},
        aliases={a["alias"]: int(a["version"]) for a in m.get("aliases", ())},
        created_at=int(m.get("creation_timestamp") or 0),
    )


def version_from_json(v: Mapping[str, Any]) -> VersionRow:
    """A model version of a REST answer as its model's name and a VersionState (the fields
    base.version_state reads from MLflow's entity, by the same names)."""
    return v["name"], VersionState(
        version=int(v["version"]),
        stage=v.get("current_stage") or "None",
        source=v.get("source") or "",
        run_id=v.get("run_id") or None,
        description=v.get("description") or "",
        tags={t["key"]: t.get("value", "") for t in v.get("tags", ())},
        status=str(v.get("status") or "READY"),
        created_at=int(v.get("creation_timestamp") or 0),
        updated_at=int(v.get("last_updated_timestamp") or 0),
    )


def is_rest(store: Any) -> bool:
    """MLflow's own REST registry store, exactly (a subclass may change how it searches)."""
    from mlflow.store.model_registry.rest_store import RestStore

    return type(store) is RestStore


def searches(store: Any, models_page: int, versions_page: int) -> tuple[Search, Search]:
    """The models search and the versions search of this store."""
    if is_rest(store):
        from mlflow.protos.model_registry_pb2 import SearchModelVersions, SearchRegisteredModels

        return (
            _search(_rest_page(store, SearchRegisteredModels, "registered_models"), models_page,
                    model_from_json),
            _search(_rest_page(store, SearchModelVersions, "model_versions"), versions_page,
                    version_from_json),
        )  # fmt: skip
    return (
        _search(store.search_registered_models, models_page, model_from_entity),
        _search(
            store.search_model_versions, versions_page, lambda v: (str(v.name), version_state(v))
        ),
    )


def _search(page: Callable[..., Any], size: int, row: Callable[[Any], Any]) -> Search:
    def search(flt: str | None, tick: Callable[[], None]) -> list[Any]:
        return [row(item) for item in pages(page, flt, size, tick)]

    return search


def _rest_page(store: Any, request: Any, key: str) -> Callable[..., Any]:
    """One page of a REST search, as the store's own search method is called (base.pages),
    its items left as JSON."""
    from mlflow.store.entities.paged_list import PagedList
    from mlflow.utils.proto_json_utils import message_to_json
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    endpoint, method = store._get_endpoint_from_method(request)

    def page(filter_string: str | None, max_results: int, page_token: str | None) -> Any:
        # the query MLflow's call_endpoint sends for a GET: the request message as JSON
        message = request(filter=filter_string, max_results=max_results, page_token=page_token)
        params = json.loads(message_to_json(message))
        creds = store.get_host_creds()
        response = http_request(creds, endpoint, method, params=params)  # type: ignore[no-untyped-call]
        if response.status_code != 200:
            verify_rest_response(response, endpoint)  # raises MLflow's exception for it
        answer = response.json()
        return PagedList(answer.get(key, []), answer.get("next_page_token"))

    return page
