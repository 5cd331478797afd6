"""Reading and validating request bodies; errors are domain errors the middleware formats."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from sqlembed.errors import InvalidInput, PayloadTooLarge, UnprocessableInput, UnsupportedMediaType

log = logging.getLogger(__name__)

# SQL Server may override content-type with these (contract A5); curl -d sends form-urlencoded.
_JSON_COMPATIBLE = ("application/json", "text/plain", "application/x-www-form-urlencoded")
_logged_keys: set[str] = set()


def _acceptable(content_type: str) -> bool:
    return (
        content_type in _JSON_COMPATIBLE
        or (content_type.startswith("application/") and content_type.endswith(("+json", ".json")))
    )


async def read_json(request: web.Request, max_bytes: int) -> dict[str, Any]:
    if "Content-Type" in request.headers and not _acceptable(request.content_type):
        raise UnsupportedMediaType(
            f"Content-Type '{request.content_type}' is not supported; send application/json"
        )
    charset = request.charset
    if charset is not None and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"charset '{charset}' is not supported; send UTF-8")
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"request body of {request.content_length} bytes exceeds the {max_bytes}-byte limit")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"request body exceeds the {max_bytes}-byte limit") from exc
    if not raw.strip():
        raise InvalidInput("request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("request body is not valid UTF-8") from exc
        raise InvalidInput(f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    return body


def log_unknown_keys(body: dict[str, Any], known: frozenset[str], route: str) -> None:
    """Clients send fields we do not use (sql_rest_options, options, keep_alive...): tolerate them."""
    for key in body.keys() - known:
        tag = f"{route}:{key}"
        if tag not in _logged_keys and len(_logged_keys) < 256:
            _logged_keys.add(tag)
            log.info("ignoring unknown field %r on %s (logged once)", key[:64], route)


def parse_texts(value: Any, param: str, max_inputs: int) -> list[str]:
    if value is None:
        raise InvalidInput(f"'{param}' is required", param=param)
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list):
        if not value:
            raise InvalidInput(f"'{param}' must not be an empty list", param=param)
        if all(isinstance(v, str) for v in value):
            texts = value
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in value) or all(
            isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool) for t in v)
            for v in value
        ):
            raise UnprocessableInput(
                f"token-id arrays in '{param}' are not supported by this model; send text", param=param
            )
        else:
            raise InvalidInput(f"'{param}' must be a string or a list of strings", param=param)
    else:
        raise InvalidInput(f"'{param}' must be a string or a list of strings", param=param)
    if len(texts) > max_inputs:
        raise InvalidInput(f"too many inputs: {len(texts)} (limit {max_inputs} per request)", param=param)
    for i, t in enumerate(texts):
        if not t:
            where = param if len(texts) == 1 and isinstance(value, str) else f"{param}[{i}]"
            raise InvalidInput(f"'{where}' is an empty string", param=param)
    return texts


def opt_str(body: dict[str, Any], key: str) -> str | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise InvalidInput(f"'{key}' must be a string", param=key)
    return v


def opt_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    v = body.get(key)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise InvalidInput(f"'{key}' must be true or false", param=key)
    return v


def opt_dimensions(body: dict[str, Any]) -> int | None:
    v = body.get("dimensions")
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InvalidInput("'dimensions' must be a positive integer", param="dimensions")
    return v
