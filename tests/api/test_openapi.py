"""GET /openapi.json is generated from the route table and the protocol models: it describes every
route, cannot drift from the models, carries the configured limits, and every documented example
request validates. A bounded schemathesis run checks that no request gets a 5xx and that every
response conforms to the schema (the server-side conformance record covers every other test)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from sqlembed.api import routes
from sqlembed.api.routes import build_spec
from sqlembed.api.schemas.common import Limits, parse
from sqlembed.errors import SqlembedError

pytestmark = pytest.mark.slow

schema = schemathesis.openapi.from_dict(build_spec())
DOCS = Path(__file__).parents[2] / "docs" / "api.md"


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_spec_matches_the_routes(fake_url: str) -> None:
    served = httpx.get(fake_url + "/openapi.json").json()
    assert served["openapi"].startswith("3.1")
    methods = {"get", "post", "put", "patch", "delete", "head"}
    documented = {(m.upper(), p) for p, ops in served["paths"].items() for m in ops if m in methods}
    assert documented == {(r.method, r.path) for r in routes.ROUTES}


def test_every_model_field_is_in_the_spec() -> None:
    spec = build_spec()
    for r in routes.ROUTES:
        op = spec["paths"][r.path][r.method.lower()]
        if r.request is not None:
            body = _resolve(spec, op["requestBody"]["content"]["application/json"]["schema"])
            assert set(r.request.model_fields) <= set(body["properties"]), r.path
            required = {n for n, f in r.request.model_fields.items() if f.is_required()}
            assert set(body.get("required", [])) == required, r.path
        if r.response is not None and hasattr(r.response, "__annotations__"):
            ok = _resolve(spec, op["responses"][str(r.status)]["content"]["application/json"]["schema"])
            assert set(r.response.__annotations__) <= set(ok["properties"]), r.path


def test_a_new_field_appears_without_editing_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from sqlembed.api.schemas.ollama import EmbedRequest

    class Extended(EmbedRequest):
        brand_new_field: int = 3

    first = replace(routes.ROUTES[0], request=Extended)
    monkeypatch.setattr(routes, "ROUTES", (first, *routes.ROUTES[1:]))
    body = _resolve(build := build_spec(), build["paths"]["/api/embed"]["post"]["requestBody"]["content"]
                    ["application/json"]["schema"])
    assert body["properties"]["brand_new_field"]["default"] == 3


def test_limits_that_are_settings_carry_the_configured_value() -> None:
    text = json.dumps(build_spec(Limits(max_inputs=7)))
    assert '"maxItems": 7' in text and "x-sqlembed-limit" not in text
    assert '"maxItems": 2048' in json.dumps(build_spec())


def _route(method: str, path: str) -> routes.Route:
    return next(r for r in routes.ROUTES if r.method == method and r.path == path)


def _doc_examples() -> list[tuple[str, str, str, str]]:
    """```json blocks in docs/api.md whose info string names a request (`POST /path`) or a
    response (`200 GET /path`)."""
    out = []
    for m in re.finditer(r"```json (\d{3} )?(GET|POST|DELETE) (\S+)\n(.*?)```", DOCS.read_text("utf-8"), re.S):
        out.append(((m.group(1) or "").strip(), m.group(2), m.group(3), m.group(4)))
    return out


def test_every_documented_example_validates() -> None:
    examples = _doc_examples()
    assert sum(1 for e in examples if not e[0]) >= 4 and sum(1 for e in examples if e[0]) >= 3, examples
    spec = build_spec()
    for status, method, path, body in examples:
        r = _route(method, path)
        if not status:
            assert r.request is not None
            try:
                parse(r.request, body.encode(), Limits(), "docs")
            except SqlembedError as exc:
                raise AssertionError(f"docs/api.md example for {method} {path} does not validate: {exc}") from exc
        else:
            node = spec["paths"][path][method.lower()]["responses"][status]["content"]["application/json"]["schema"]
            jsonschema.validate(json.loads(body), {**node, "components": spec["components"]})
    for r in routes.ROUTES:
        for example in (r.request.model_config.get("json_schema_extra") or {}).get("examples", []) \
                if r.request is not None else []:
            parse(r.request, json.dumps(example).encode(), Limits(), "model example")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors_and_responses_conform(case: schemathesis.Case, fake_url: str) -> None:
    case.call_and_validate(base_url=fake_url, timeout=30,
                           checks=[not_a_server_error, status_code_conformance, response_schema_conformance])
