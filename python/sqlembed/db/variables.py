"""The sqlcmd variables the T-SQL uses: defaults, documentation and validation in one table."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlembed.errors import InvalidInput

SECRET_VARS = frozenset({"SQLEMBED_API_KEY"})


def _https_base(v: str) -> str | None:
    if not re.fullmatch(r"https://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~\-/]*)?", v) or v.endswith("/"):
        return "an https:// URL without query string or trailing slash"
    return None


def _credential(v: str) -> str | None:
    return None if v == "" else _https_base(v)


def _int_range(lo: int, hi: int) -> Callable[[str], str | None]:
    def check(v: str) -> str | None:
        # ASCII digits only: str.isdigit() accepts '¹' (int() fails) and '٣' (int() works, T-SQL does not).
        return None if re.fullmatch(r"[0-9]{1,9}", v) and lo <= int(v) <= hi else f"an integer from {lo} to {hi}"

    return check


def _pattern(rx: str, what: str) -> Callable[[str], str | None]:
    return lambda v: None if re.fullmatch(rx, v) else what


def _no_newline(v: str) -> str | None:
    return None if v.isprintable() else "printable text on one line"


@dataclass(frozen=True)
class Variable:
    name: str
    default: str | None  # None: required
    check: Callable[[str], str | None]
    doc: str


VARIABLES: dict[str, Variable] = {v.name: v for v in (
    Variable("SQLEMBED_URL", None, _https_base, "the service's base URL, https://host:port"),
    Variable("SQLEMBED_MODEL", "all-minilm", _pattern(r"[A-Za-z0-9._:/@-]{1,200}", "a model name"),
             "model name sent to the service"),
    Variable("SQLEMBED_API_FORMAT", "Ollama", _pattern(r"Ollama|OpenAI|Azure OpenAI", "Ollama, OpenAI or Azure OpenAI"),
             "which route the EXTERNAL MODEL calls"),
    Variable("SQLEMBED_DIMENSIONS", "384", _int_range(1, 3996), "VECTOR(n) size (float32 max 1998, float16 3996)"),
    Variable("SQLEMBED_VECTOR_TYPE", "float32", _pattern(r"float32|float16", "float32 or float16"),
             "the VECTOR base type (float16 is a preview feature on SQL Server 2025)"),
    Variable("SQLEMBED_CREDENTIAL", "", _credential, "credential name (default: SQLEMBED_URL)"),
    Variable("SQLEMBED_EXTERNAL_MODEL", "sqlembed", _pattern(r"[A-Za-z_][A-Za-z0-9_]{0,127}", "a regular identifier"),
             "the EXTERNAL MODEL's name"),
    Variable("SQLEMBED_TIMEOUT", "120", _int_range(1, 230), "@timeout seconds per call"),
    # The maximum: @timeout bounds the retries' total time anyway, and a call that runs out of
    # retries becomes a NULL vector in AI_GENERATE_EMBEDDINGS (contract B4), so retry as long as allowed.
    Variable("SQLEMBED_RETRY_COUNT", "10", _int_range(0, 10), "@retry_count"),
    Variable("SQLEMBED_API_KEY", "", _no_newline, "the service's API key (secret; never written)"),
)}


DERIVED = frozenset({"SQLEMBED_VECTOR_TYPE_SUFFIX"})
"""Computed from the others, never given: ``, float16`` (or nothing) after VECTOR(n's size."""


def resolve(given: Mapping[str, str]) -> dict[str, str]:
    """Defaults filled in, every value validated; SQLEMBED_CREDENTIAL defaults to SQLEMBED_URL."""
    unknown = set(given) - set(VARIABLES)
    if unknown:
        raise InvalidInput(f"unknown variable(s): {', '.join(sorted(unknown))}; known: {', '.join(VARIABLES)}")
    out: dict[str, str] = {}
    for name, var in VARIABLES.items():
        value = given.get(name, var.default)
        if value is None:
            raise InvalidInput(f"{name} is required ({var.doc}); pass --var {name}=...")
        out[name] = value
    if "SQLEMBED_CREDENTIAL" not in given:
        out["SQLEMBED_CREDENTIAL"] = out["SQLEMBED_URL"]
    for name, value in out.items():
        problem = VARIABLES[name].check(value)
        if problem is not None:
            shown = "<secret>" if name in SECRET_VARS else repr(value)
            raise InvalidInput(f"{name}={shown} is not valid: expected {problem}")
    if out["SQLEMBED_VECTOR_TYPE"] == "float32" and int(out["SQLEMBED_DIMENSIONS"]) > 1998:
        raise InvalidInput("SQLEMBED_DIMENSIONS above 1998 needs SQLEMBED_VECTOR_TYPE=float16 "
                           "(VECTOR limits, contract D1)")
    out["SQLEMBED_VECTOR_TYPE_SUFFIX"] = ", float16" if out["SQLEMBED_VECTOR_TYPE"] == "float16" else ""
    return out


def sql_literal_safe(name: str, value: str) -> str:
    """Values land inside N'...' literals; quotes are doubled so no value can end the literal."""
    return value.replace("'", "''")
