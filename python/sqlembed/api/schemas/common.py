"""What every protocol shares: reading the body, the validation-error adapter, limits, text lists.

Validation errors are mapped once, here, to the domain errors of ``sqlembed.errors``; the error
middleware then formats them in the caller's protocol, so envelopes and status codes are the same
as they have always been documented.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

from sqlembed.api.schemas.token_ids import Undecodable, decode, is_token_ids
from sqlembed.errors import InvalidInput, PayloadTooLarge, SqlembedError, UnprocessableInput, UnsupportedMediaType

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

LIMIT = "x-sqlembed-limit"
"""Marks a schema node whose bound is a setting; the OpenAPI generator fills in the configured value."""

# SQL Server may override content-type with these (contract A5); curl -d sends form-urlencoded.
_JSON_COMPATIBLE = ("application/json", "text/plain", "application/x-www-form-urlencoded")
_logged_keys: set[str] = set()


@dataclass(frozen=True)
class Limits:
    """Request limits that are settings; validation reads them from the pydantic context."""

    max_inputs: int = 2048
    max_body_bytes: int = 100 * 1024 * 1024


class Request(BaseModel):
    """Base of every request model: JSON types as sent (no coercion), unknown fields kept and logged."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


def _acceptable(content_type: str) -> bool:
    return (content_type in _JSON_COMPATIBLE
            or (content_type.startswith("application/") and content_type.endswith(("+json", ".json"))))


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    if "Content-Type" in request.headers and not _acceptable(request.content_type):
        raise UnsupportedMediaType(f"Content-Type '{request.content_type}' is not supported; send application/json")
    charset = request.charset
    if charset is not None and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"charset '{charset}' is not supported; send UTF-8")
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"request body of {request.content_length} bytes exceeds the {max_bytes}-byte limit")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"request body exceeds the {max_bytes}-byte limit") from exc


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def domain_error(exc: ValidationError, raw: bytes) -> SqlembedError:
    """The one mapping from a pydantic validation failure to a domain error (first problem wins)."""
    err = exc.errors(include_url=False)[0]
    kind, loc, msg = err["type"], tuple(err["loc"]), str(err["msg"])
    param = str(loc[0]) if loc else None
    where = _where(loc)
    if kind == "json_invalid":
        if not raw.strip():
            return InvalidInput("request body is empty; send a JSON object")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return InvalidInput("request body is not valid UTF-8")
        return InvalidInput(msg.replace("Invalid JSON: ", "invalid JSON: "))
    if kind == "model_type" and not loc:
        return InvalidInput("request body must be a JSON object")
    if kind == "unprocessable":
        return UnprocessableInput(msg, param=param)
    if kind == "invalid_input":
        return InvalidInput(msg, param=param)
    if kind == "missing":
        return InvalidInput(f"'{where}' is required", param=param)
    return InvalidInput(f"'{where}': {msg[0].lower() + msg[1:] if msg else kind}", param=param)


def parse(model: type[M], raw: bytes, limits: Limits, route: str, *, log_extra: bool = True) -> M:
    try:
        value = model.model_validate_json(raw, context=limits)
    except ValidationError as exc:
        raise domain_error(exc, raw) from None
    if log_extra and value.model_extra:
        _log_unknown(value.model_extra, route)
    return value


def _log_unknown(extra: dict[str, Any], route: str) -> None:
    """Clients send fields we do not use (sql_rest_options, options, user...): tolerate them."""
    for key in extra:
        tag = f"{route}:{key}"
        if tag not in _logged_keys and len(_logged_keys) < 256:
            _logged_keys.add(tag)
            log.info("ignoring unknown field %r on %s (logged once)", key[:64], route)


def _limits(info: ValidationInfo) -> Limits:
    ctx = info.context
    return ctx if isinstance(ctx, Limits) else Limits()


def _texts(value: Any, info: ValidationInfo, *, token_ids: bool = False, empty: bool = False) -> list[str]:
    """``token_ids``: OpenAI-style token-id arrays are decoded as cl100k_base (schemas/token_ids.py);
    elsewhere they are refused with 422 rather than read as this model's vocabulary. ``empty``:
    Ollama's reading (server/routes.go EmbedHandler): null, "" or [] is no text at all (its "load
    the model" request, answered with no embeddings) and "" inside a list is a text like any other."""
    param = info.field_name or "input"
    if empty and (value is None or value == "" or value == []):
        return []
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list):
        if not value:
            raise PydanticCustomError("invalid_input", "'{p}' must not be an empty list", {"p": param})
        if all(isinstance(v, str) for v in value):
            texts = value
        elif is_token_ids(value):
            if not token_ids:
                raise PydanticCustomError("unprocessable",
                                          "token-id arrays in '{p}' are not supported by this model; send text",
                                          {"p": param})
            texts = _decoded(value, param, _limits(info).max_inputs)
        else:
            raise PydanticCustomError("invalid_input", "'{p}' must be a string or a list of strings", {"p": param})
    else:
        raise PydanticCustomError("invalid_input", "'{p}' must be a string or a list of strings", {"p": param})
    limit = _limits(info).max_inputs
    if len(texts) > limit:
        raise PydanticCustomError("invalid_input", "too many inputs: {n} (limit {limit} per request)",
                                  {"n": len(texts), "limit": limit})
    for i, t in enumerate(texts):
        if not t and not empty:
            where = param if isinstance(value, str) else f"{param}[{i}]"
            raise PydanticCustomError("invalid_input", "'{w}' is an empty string", {"w": where})
    return texts


def _decoded(value: list[Any], param: str, limit: int) -> list[str]:
    nested = isinstance(value[0], list)
    if nested and len(value) > limit:  # before decoding them
        raise PydanticCustomError("invalid_input", "too many inputs: {n} (limit {limit} per request)",
                                  {"n": len(value), "limit": limit})
    try:
        if nested:
            return [decode(ids, f"{param}[{i}]") for i, ids in enumerate(value)]
        return [decode(value, param)]
    except Undecodable as exc:
        raise PydanticCustomError("unprocessable", "{m}", {"m": str(exc)}) from None


def _plain_texts(value: Any, info: ValidationInfo) -> list[str]:
    return _texts(value, info)


def _openai_texts(value: Any, info: ValidationInfo) -> list[str]:
    return _texts(value, info, token_ids=True)


def _ollama_texts(value: Any, info: ValidationInfo) -> list[str]:
    return _texts(value, info, empty=True)


_TEXTS_SCHEMA: list[dict[str, Any]] = [
    {"type": "string", "minLength": 1},
    {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, LIMIT: "max_inputs"},
]
_IDS_SCHEMA: list[dict[str, Any]] = [
    {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
    {"type": "array", "items": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
     "minItems": 1, LIMIT: "max_inputs"},
]
Texts = Annotated[list[str], PlainValidator(_plain_texts), WithJsonSchema({
    "oneOf": _TEXTS_SCHEMA,
    "description": "one text or a list of texts (token-id arrays are refused with 422)",
})]
"""A string or a non-empty list of non-empty strings, at most ``max_inputs`` of them."""

OpenAITexts = Annotated[list[str], PlainValidator(_openai_texts), WithJsonSchema({
    "oneOf": _TEXTS_SCHEMA + _IDS_SCHEMA,
    "description": "one text, a list of texts, or OpenAI token ids: one array of ints (one text) or arrays of "
                   "them, read as OpenAI's cl100k_base encoding (what LangChain's OpenAIEmbeddings sends by "
                   "default), decoded to text and embedded with this model's tokenizer; ids that do not decode "
                   "are refused with 422",
})]
"""``Texts``, or OpenAI-style token-id arrays decoded to their text (schemas/token_ids.py)."""

OllamaTexts = Annotated[list[str], PlainValidator(_ollama_texts), WithJsonSchema({
    "oneOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}, LIMIT: "max_inputs"},
        {"type": "null"},
    ],
    "description": "one text or a list of texts; missing, null, \"\" or [] embeds nothing and answers "
                   "\"embeddings\": [] (Ollama's load-the-model request); \"\" in a list is embedded, as Ollama "
                   "does; token-id arrays are refused with 422",
})]
"""``Texts`` as Ollama reads them: also no text at all, and "" inside a list."""

Dimensions = Annotated[int, Field(ge=1, description="keep the first n dimensions and re-normalize")]
InputType = Annotated[Literal["query", "passage", "document"], Field(
    description="which of the model's prompts to prepend (query, or passage = document); default: the model's "
                "default prompt, if it declares one. Also by model name: <model>-query, <model>-passage")]
TruncationDirection = Annotated[Literal["right", "left"], Field(
    description="which end of an over-long text is cut: right keeps the start, left keeps the end "
                "(default SQLEMBED_TRUNCATION_DIRECTION); the response header x-sqlembed-truncated-tokens "
                "says how many tokens were dropped")]
Vector = Annotated[Any, WithJsonSchema({"type": "array", "items": {"type": "number"}})]
"""A float32 vector (numpy at run time, serialized by orjson)."""
Vectors = Annotated[Any, WithJsonSchema({"type": "array", "items": {"type": "array", "items": {"type": "number"}}})]
Scalar = Annotated[Any, WithJsonSchema({"type": ["string", "number", "integer", "boolean"]})]


def check_rows(rows: list[Any], info: ValidationInfo) -> list[Any]:
    """A list of keyed rows: the list is checked here, each row by the route (row errors never fail a batch)."""
    if not rows:
        raise PydanticCustomError("invalid_input", "'{p}' must not be empty", {"p": info.field_name})
    limit = _limits(info).max_inputs
    if len(rows) > limit:
        raise PydanticCustomError("invalid_input", "too many inputs: {n} (limit {limit} per request)",
                                  {"n": len(rows), "limit": limit})
    return rows
