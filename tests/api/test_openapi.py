"""GET /openapi.json describes every route, and a bounded schemathesis run finds no 5xx."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from sqlembed.api.app import ROUTES
from sqlembed.api.openapi import build_spec

pytestmark = pytest.mark.slow

schema = schemathesis.openapi.from_dict(build_spec())


def test_spec_matches_the_routes(base_url: str) -> None:
    served = httpx.get(base_url + "/openapi.json").json()
    assert served["openapi"].startswith("3.1")
    methods = {"get", "post", "put", "patch", "delete", "head"}
    documented = {(m.upper(), p) for p, ops in served["paths"].items() for m in ops if m in methods}
    registered = {(m, p) for m, p, _ in ROUTES}
    assert documented == registered


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case: schemathesis.Case, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, checks=[not_a_server_error], timeout=30)
