"""Ollama's embedding API (contract E): request models and response shapes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator
from typing_extensions import TypedDict

from sqlembed.api.schemas.common import (
    InputType,
    OllamaTexts,
    Request,
    TruncationDirection,
    Vector,
    Vectors,
)

OllamaDimensions = Annotated[int, Field(ge=0, description="keep the first n dimensions and re-normalize; 0 is unset "
                                                          "(Go's zero value, as Ollama reads it)")]


class EmbedRequest(Request):
    """``POST /api/embed``. ``model`` is optional here (Ollama requires it; SQL Server always sends it)."""

    model: str | None = Field(None, description="echoed back; unknown names are served by the loaded model "
                                                "unless SQLEMBED_STRICT_MODEL")
    input: OllamaTexts = Field(default_factory=list)
    truncate: bool = Field(True, description="false: a text over the model's context is an error")
    dimensions: OllamaDimensions | None = None
    keep_alive: str | float | None = Field(None, description="accepted and ignored (the model stays loaded)")
    options: dict[str, Any] | None = Field(None, description="accepted and ignored")
    input_type: InputType | None = None
    truncation_direction: TruncationDirection | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model": "all-minilm", "input": "SQL Server 2025 calls sqlembed"},
        {"model": "all-minilm", "input": ["first text", "second text"], "dimensions": 256},
    ]})

    @field_validator("dimensions")
    @classmethod
    def _zero_is_unset(cls, v: int | None) -> int | None:
        return v or None


class LegacyRequest(Request):
    """``POST /api/embeddings`` (superseded by /api/embed, contract E2)."""

    model: str | None = None
    prompt: str | None = Field(None, description="missing, null or \"\": no text, answered with "
                                                  "\"embedding\": [] (Ollama's load-the-model request)")
    keep_alive: str | float | None = None
    options: dict[str, Any] | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{"model": "all-minilm", "prompt": "hello"}]})


class ShowRequest(Request):
    """``POST /api/show``: what clients ask before they embed (context length, embedding length)."""

    model: str | None = Field(None, description="the name as in /api/embed; unknown names describe the loaded "
                                                "model unless SQLEMBED_STRICT_MODEL (then 404)")
    name: str | None = Field(None, description="older clients' spelling of 'model'")
    verbose: bool = Field(False, description="accepted; there is no tensor list to add")

    model_config = ConfigDict(json_schema_extra={"examples": [{"model": "all-minilm"}, {"name": "all-minilm:latest"}]})


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
    context_length: int
    """Ollama's name for max_tokens (its ModelDetails carries it since 0.30; ollama/ollama api/types.go)."""


class Tag(TypedDict):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: TagDetails


class TagsResponse(TypedDict):
    models: list[Tag]


class ShowResponse(TypedDict):
    license: str
    modelfile: str
    parameters: str
    template: str
    details: TagDetails
    model_info: dict[str, str | int]
    """GGUF-style keys: general.architecture, general.parameter_count, <architecture>.context_length,
    <architecture>.embedding_length (what clients read the model's limits from)."""
    capabilities: list[str]
    modified_at: str


class RunningModel(TypedDict):
    name: str
    model: str
    size: int
    digest: str
    details: TagDetails
    expires_at: str
    size_vram: int
    context_length: int


class PsResponse(TypedDict):
    models: list[RunningModel]


class VersionResponse(TypedDict):
    version: str
    sqlembed: str


class OllamaError(TypedDict):
    error: str
