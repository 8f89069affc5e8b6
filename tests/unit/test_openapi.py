"""The OpenAPI document (/api/v1/openapi.json) names every native route the app serves,
with the methods it takes, and every operation its common errors; schemathesis
(tests/integration/test_schemathesis.py) checks the rest against a live daemon."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from symbid.api import http, make_app
from symbid.api.openapi import document
from tests.harness import Harness


def served_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    add = http.Router.add

    def record(self: http.Router, method: str, pattern: str, handler: http.Handler) -> None:
        seen.add((method.lower(), pattern))
        add(self, method, pattern, handler)

    monkeypatch.setattr(http.Router, "add", record)
    make_app(Harness(tmp_path).api_context())
    return seen


def test_every_native_route_is_in_the_document_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes = {(m, p) for m, p in served_routes(tmp_path, monkeypatch)
              if not p.startswith("/symbiont/")}  # the SDK dialect: the SDK's own API
    documented = {(m, p) for p, ops in document()["paths"].items() for m in ops}
    assert routes == documented


def test_every_path_parameter_is_described() -> None:
    for path, ops in document()["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for method, op in ops.items():
            given = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert given == names, (method, path)


def test_every_operation_documents_its_errors_with_the_error_shape() -> None:
    for path, ops in document()["paths"].items():
        for method, op in ops.items():
            responses = op["responses"]
            assert {"400", "401"} <= set(responses), (method, path)
            if "requestBody" in op:
                assert "413" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (status, path)


def test_the_document_declares_the_bearer_scheme_tcp_needs() -> None:
    doc = document()
    assert doc["security"] == [{"bearer": []}]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_every_operation_has_its_own_id_and_links_lead_to_operations_that_exist() -> None:
    doc = document()
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    links = [link for ops in doc["paths"].values() for op in ops.values()
             for response in op["responses"].values()
             for link in response.get("links", {}).values()]
    assert links and all(link["operationId"] in ids for link in links)
    job_ops = {op["operationId"] for path, ops in doc["paths"].items() if "{job_id}" in path
               for op in ops.values()}
    created = doc["paths"]["/api/v1/schedule"]["post"]["responses"]["201"]["links"]
    assert set(created) == job_ops
