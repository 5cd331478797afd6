"""OpenAI / Azure OpenAI embeddings (contract F): request models and response shapes."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field
from typing_extensions import TypedDict

from sqlembed.api.schemas.common import Dimensions, InputType, OpenAITexts, Request, TruncationDirection, Vector


class EmbeddingsRequest(Request):
    """``POST /v1/embeddings`` and the Azure deployment routes (the deployment names the model)."""

    input: OpenAITexts
    model: str | None = None
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="base64: packed little-endian float32 (contract F3)")
    dimensions: Dimensions | None = None
    user: str | None = Field(None, description="accepted and ignored")
    input_type: InputType | None = None
    truncation_direction: TruncationDirection | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model": "all-minilm", "input": "SQL Server 2025 calls sqlembed"},
        {"input": ["a", "b"], "encoding_format": "base64"},
    ]})


class EmbeddingObject(TypedDict):
    object: Literal["embedding"]
    index: int
    embedding: Vector | str


class Usage(TypedDict):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(TypedDict):
    object: Literal["list"]
    data: list[EmbeddingObject]
    model: str
    usage: Usage


class ModelDetails(TypedDict):
    dimensions: int
    pooling: str
    normalize: bool
    precision: str
    prompts: dict[str, str]
    max_tokens: int


class ModelObject(TypedDict):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    sqlembed: ModelDetails
    """sqlembed's own (OpenAI clients ignore extra keys)."""


class ModelList(TypedDict):
    object: Literal["list"]
    data: list[ModelObject]


class ErrorDetail(TypedDict):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(TypedDict):
    error: ErrorDetail
