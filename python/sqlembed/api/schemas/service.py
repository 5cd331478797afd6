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
    vector_id: NotRequired[str]
    """What stored vectors record as their model: the id, plus the quantization recipe for int8
    (a rebuilt int8 model gives other vectors). embed_rows and bulk jobs compare it."""
    engine: NotRequired[dict[str, Any]]
    """The backend's own description: runtime, the precision it computes in, threads, CPU flags or
    device, and why it was chosen."""
    placement: NotRequired[dict[str, Any]]
    error: NotRequired[str]
