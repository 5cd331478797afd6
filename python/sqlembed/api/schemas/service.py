"""Health and readiness."""

from __future__ import annotations

from typing import Any, NotRequired

from typing_extensions import TypedDict


class Health(TypedDict):
    status: str


class Ready(TypedDict):
    status: str
    model: NotRequired[str]
    dimensions: NotRequired[int]
    prompts: NotRequired[dict[str, str]]
    """The model's prompt per input type (query, passage): embed_rows records which it used."""
    backend: NotRequired[str | None]
    placement: NotRequired[dict[str, Any]]
    error: NotRequired[str]
