"""Static checks of sql/ (no SQL Server needed): layout, idempotency, secrets, variables.
Parsing and the transaction and collation rules: test_parse_and_contract.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sqlembed.db.sqlfiles import SqlFile, load, mask, sql_root, variables_used
from sqlembed.db.variables import DERIVED, SECRET_VARS, VARIABLES, resolve

FILES = load()
VALUES = resolve({"SQLEMBED_URL": "https://embed.example.internal:8888", "SQLEMBED_API_KEY": "k"})
ROOT = sql_root()


def _ids(files: list[SqlFile]) -> list[str]:
    return [f"{f.kind}/{f.name}" for f in files]


def test_the_package_ships_the_repository_sql() -> None:
    assert ROOT.resolve() == (Path(__file__).parents[2] / "sql").resolve()


@pytest.mark.parametrize("kind", ["migration", "object"])
def test_numbering_steps_by_ten_and_grants_last(kind: str) -> None:
    numbers = [f.number for f in FILES if f.kind == kind]
    assert numbers == sorted(set(numbers)), "unique and ordered"
    assert all(n % 10 == 0 and n > 0 for n in numbers), numbers
    if kind == "object":
        assert [f.name for f in FILES if f.kind == kind][-1] == "900_grants.sql"
        assert all(n < 900 for n in numbers[:-1])


@pytest.mark.parametrize("f", FILES, ids=_ids(FILES))
def test_batches_end_with_go_and_set_options(f: SqlFile) -> None:
    lines = [ln for ln in f.text.splitlines() if ln.strip()]
    assert lines[-1].strip().upper() == "GO", "the last batch ends with GO"
    if f.kind != "migration":
        head = mask(f.text).upper()
        assert "SET QUOTED_IDENTIFIER ON" in head and "SET ANSI_NULLS ON" in head


_CREATE = re.compile(
    # USER and CERTIFICATE: the principal sqlembed.invoke runs as (or is signed by) is made every deploy.
    r"\bCREATE\s+(?!OR\s+ALTER\b)(TABLE(?!\s+#)|PROCEDURE|PROC|FUNCTION|VIEW|ROLE|USER|CERTIFICATE|SCHEMA|TRIGGER|"
    r"TYPE|EXTERNAL\s+MODEL|DATABASE\s+SCOPED\s+CREDENTIAL|INDEX|VECTOR\s+INDEX)\b",
    re.IGNORECASE,
)
_GUARD = re.compile(
    r"\bIF\s+(NOT\s+EXISTS|EXISTS|OBJECT_ID|SCHEMA_ID|DATABASE_PRINCIPAL_ID)\b[^;]*$", re.IGNORECASE | re.DOTALL
)


def unguarded_creates(text: str) -> list[str]:
    """Each CREATE of an object that is not guarded by an existence test just before it (a second
    deploy would fail on it: Msg 2714, or Msg 15023 for a user)."""
    code = mask(text)
    return [
        f"{m.group(0)!r} at line {code[: m.start()].count(chr(10)) + 1}"
        for m in _CREATE.finditer(code)
        if not _GUARD.search(code[max(0, m.start() - 300) : m.start()])
    ]


@pytest.mark.parametrize(
    "f", [f for f in FILES if f.kind != "migration"], ids=_ids([f for f in FILES if f.kind != "migration"])
)
def test_objects_and_bootstrap_are_idempotent(f: SqlFile) -> None:
    code = mask(f.text)
    assert not unguarded_creates(f.text), f"{f.name}: unguarded {unguarded_creates(f.text)}"
    assert not re.search(r"\bDROP\s+(TABLE|PROCEDURE|FUNCTION|VIEW|SCHEMA|EXTERNAL\s+MODEL)\b", code, re.I), (
        "objects never drop: re-applying must not lose data or break schema-bound dependents"
    )
    assert not re.search(r"\bALTER\s+TABLE\b", code, re.I), "table changes belong in migrations"


@pytest.mark.parametrize(
    "sql", ["CREATE USER sqlembed_invoker WITHOUT LOGIN;", "CREATE CERTIFICATE c WITH SUBJECT = 'x';"]
)
def test_an_unguarded_principal_is_refused(sql: str) -> None:
    assert unguarded_creates("GO\n" + sql)
    assert not unguarded_creates("IF DATABASE_PRINCIPAL_ID(N'x') IS NULL\n    " + sql)


@pytest.mark.parametrize(
    "f", [f for f in FILES if f.kind == "migration"], ids=_ids([f for f in FILES if f.kind == "migration"])
)
def test_migrations_are_static(f: SqlFile) -> None:
    assert not variables_used(f.text), "migrations take no variables, so their checksums never depend on a deploy"


def test_no_literal_secrets() -> None:
    for f in FILES:
        code = mask(f.text)
        # A SECRET = '<literal>' would be visible as SECRET = '' after masking (string blanked).
        assert not re.search(r"SECRET\s*=\s*N?'", code, re.I), f"{f.name}: literal SECRET"
        for m in re.finditer(r"PASSWORD\s*=\s*N?'+([^']*)'", f.text, re.I):
            assert m.group(1).startswith("<"), f"{f.name}: literal password"
        assert not re.search(r"\b(sk-[A-Za-z0-9]{16,}|AKIA[0-9A-Z]{16})", f.text), f"{f.name}: key-like literal"


def test_every_variable_is_known_documented_and_used() -> None:
    used = set().union(*(variables_used(f.text) for f in FILES))
    assert used == set(VARIABLES) | DERIVED, (
        f"unused: {set(VARIABLES) - used}, unknown: {used - set(VARIABLES) - DERIVED}"
    )
    readme = (ROOT / "README.md").read_text("utf-8")
    for name in VARIABLES:
        assert f"`{name}`" in readme, f"{name} is not documented in sql/README.md"


def test_unknown_and_invalid_variables_are_refused() -> None:
    from sqlembed.errors import InvalidInput

    with pytest.raises(InvalidInput, match="SQLEMBED_URL is required"):
        resolve({})
    with pytest.raises(InvalidInput, match="unknown variable"):
        resolve({"SQLEMBED_URL": "https://a", "NOPE": "1"})
    for name, bad in (
        ("SQLEMBED_URL", "http://plain"),
        ("SQLEMBED_URL", "https://a/x?code=1"),
        ("SQLEMBED_URL", "https://a'; DROP TABLE x;--"),
        ("SQLEMBED_DIMENSIONS", "0"),
        ("SQLEMBED_DIMENSIONS", "1999"),
        ("SQLEMBED_API_FORMAT", "Gemini"),
        ("SQLEMBED_EXTERNAL_MODEL", "a b"),
        ("SQLEMBED_TIMEOUT", "231"),
        ("SQLEMBED_RETRY_COUNT", "11"),
    ):
        with pytest.raises(InvalidInput, match=name):
            resolve({"SQLEMBED_URL": "https://a", name: bad} if name != "SQLEMBED_URL" else {name: bad})
    with pytest.raises(InvalidInput) as info:
        resolve({"SQLEMBED_URL": "https://a", "SQLEMBED_API_KEY": "multi\nline-secret"})
    assert "multi" not in str(info.value), "secrets never appear in errors"
    assert resolve({"SQLEMBED_URL": "https://a:1"})["SQLEMBED_CREDENTIAL"] == "https://a:1"
    assert set(SECRET_VARS) <= set(VARIABLES)
