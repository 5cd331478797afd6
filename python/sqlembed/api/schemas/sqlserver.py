"""The keyed-rows contract of ``sqlembed.embed_rows`` (``POST /v1/sqlserver/embed``, docs/api.md)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, PlainValidator, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from sqlembed.api.schemas.common import (
    LIMIT,
    Dimensions,
    InputType,
    Request,
    Scalar,
    TruncationDirection,
    Vector,
    check_rows,
)
from sqlembed.api.schemas.openai import Usage

ROW = {"type": "object", "required": ["id", "text"],
       "properties": {"id": {"type": ["string", "number", "integer", "boolean"]}, "text": {"type": "string"}}}


def _rows(value: Any, info: ValidationInfo) -> list[Any]:
    if not isinstance(value, list):
        raise PydanticCustomError("invalid_input", "'inputs' must be a list of {{\"id\", \"text\"}} objects")
    return check_rows(value, info)


Rows = Annotated[list[Any], PlainValidator(_rows), WithJsonSchema({
    "type": "array", "items": ROW, "minItems": 1, LIMIT: "max_inputs",
    "description": "a bad row is reported in `errors` and never fails the others"})]


class EmbedRowsRequest(Request):
    model: str | None = None
    dimensions: Dimensions | None = None
    inputs: Rows
    input_type: InputType | None = None
    truncation_direction: TruncationDirection | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model": "all-minilm", "dimensions": 384,
         "inputs": [{"id": "1", "text": "first row"}, {"id": "2", "text": "second row"}]},
    ]})


class RowVector(TypedDict):
    id: Scalar
    embedding: Vector


class RowError(TypedDict):
    id: Annotated[Any, WithJsonSchema({"type": ["string", "number", "integer", "boolean", "null"]})]
    error: str


class EmbedRowsResponse(TypedDict):
    model: str
    model_id: str
    dimensions: int
    embeddings: list[RowVector]
    errors: list[RowError]
    usage: Usage


NDJSON_DESCRIPTION = ("With `Accept: application/x-ndjson`: one JSON object per line, bad rows first "
                      "(`{\"id\", \"error\"}`), then `{\"id\", \"embedding\"}` as each chunk finishes, then "
                      "`{\"done\": true, \"embedded\", \"failed\", \"usage\"}`.")
