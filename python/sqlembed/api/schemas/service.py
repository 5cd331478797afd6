"""Health and readiness."""

from __future__ import annotations

from typing import Any, NotRequired

from typing_extensions import TypedDict


class Health(TypedDict):
    status: str


class Ready(TypedDict):
    status: str
    model: NotRequired[str]
    backend: NotRequired[str | None]
    placement: NotRequired[dict[str, Any]]
    error: NotRequired[str]
