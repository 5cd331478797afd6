"""Ollama's embedding API (contract E): request models and response shapes."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field
from typing_extensions import TypedDict

from sqlembed.api.schemas.common import (
    Dimensions,
    InputType,
    Request,
    Texts,
    TruncationDirection,
    Vector,
    Vectors,
)


class EmbedRequest(Request):
    """``POST /api/embed``. ``model`` is optional here (Ollama requires it; SQL Server always sends it)."""

    model: str | None = Field(None, description="echoed back; unknown names are served by the loaded model "
                                                "unless SQLEMBED_STRICT_MODEL")
    input: Texts
    truncate: bool = Field(True, description="false: a text over the model's context is an error")
    dimensions: Dimensions | None = None
    keep_alive: str | float | None = Field(None, description="accepted and ignored (the model stays loaded)")
    options: dict[str, Any] | None = Field(None, description="accepted and ignored")
    input_type: InputType | None = None
    truncation_direction: TruncationDirection | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model": "all-minilm", "input": "SQL Server 2025 calls sqlembed"},
        {"model": "all-minilm", "input": ["first text", "second text"], "dimensions": 256},
    ]})


class LegacyRequest(Request):
    """``POST /api/embeddings`` (superseded by /api/embed, contract E2)."""

    model: str | None = None
    prompt: str = Field(min_length=1)
    keep_alive: str | float | None = None
    options: dict[str, Any] | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{"model": "all-minilm", "prompt": "hello"}]})


class EmbedResponse(TypedDict):
    model: str
    embeddings: Vectors
    total_duration: int
    load_duration: int
    prompt_eval_count: int


class LegacyResponse(TypedDict):
    embedding: Vector


class TagDetails(TypedDict):
    parent_model: str
    format: str
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str
    # sqlembed's own: what a client needs to know about the vectors (Ollama clients ignore extra keys).
    embedding_length: int
    pooling: str
    normalize: bool
    prompts: dict[str, str]
    max_tokens: int


class Tag(TypedDict):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: TagDetails


class TagsResponse(TypedDict):
    models: list[Tag]


class VersionResponse(TypedDict):
    version: str
    sqlembed: str


class OllamaError(TypedDict):
    error: str
