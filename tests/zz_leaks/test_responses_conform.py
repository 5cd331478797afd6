"""Runs last (directory order): every JSON response any test server sent during the session is
described by that server's own OpenAPI document (route, method, status and body schema)."""

from __future__ import annotations

import pytest

from tests.support.server import CHECKED, CONFORMANCE


def test_every_response_the_suite_received_conforms_to_the_spec() -> None:
    if CHECKED[0] == 0:
        pytest.skip("no API test ran in this session (run the whole suite)")
    assert CHECKED[0] >= 100, f"only {CHECKED[0]} responses were checked"
    assert not CONFORMANCE, CONFORMANCE[:10]
