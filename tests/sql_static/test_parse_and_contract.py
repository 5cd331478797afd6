"""The T-SQL, parsed and held to its contracts without a server.

- Every batch of the rendered deployment script and every dynamic-SQL template (placeholders
  filled with sample names) parses with sqlfluff's T-SQL dialect; the few SQL Server 2025
  statements it does not know must match their documented syntax instead.
- The transaction contract of sql/README.md, by rule, for every procedure that writes.
- Collations, HOLDLOCK upserts, TRY_CAST into VECTOR, vector sizes from the catalog, the
  credential decided at deploy time, CREDENTIAL before PARAMETERS.
"""

from __future__ import annotations

import re
from functools import cache

import pytest
from sqlfluff.core import FluffConfig, Linter

from sqlembed.db.sqlfiles import mask, substitute
from tests.sql_static.tsql import (
    AGE_SYNTAX,
    DOCUMENTED,
    FILES,
    FLOAT16,
    VECTOR_SEARCH_EARLIER,
    VECTOR_SEARCH_V3,
    Procedure,
    fill,
    for_sqlfluff,
    procedures,
    rendered_batches,
    templates,
)


@cache
def _linter() -> Linter:
    return Linter(config=FluffConfig(overrides={"dialect": "tsql"}))


def unparsable(sql: str) -> list[str]:
    """The source of every section sqlfluff could not parse (empty: it all parsed)."""
    parsed = _linter().parse_string(for_sqlfluff(sql))
    return [v.desc() for v in parsed.violations]


def _documented(sql: str) -> str | None:
    for name, rx in DOCUMENTED.items():
        if rx.match(sql):
            return name
    return None


BATCHES = rendered_batches()


@pytest.mark.parametrize("i", range(len(BATCHES)))
def test_every_rendered_batch_parses(i: int) -> None:
    problems = unparsable(BATCHES[i])
    assert not problems, f"batch {i} ({BATCHES[i].strip().splitlines()[0][:80]}): {problems[0][:400]}"


TEMPLATES = [(f.name, t) for f in FILES for t in templates(f)]


@pytest.mark.parametrize(("name", "template"), TEMPLATES, ids=[f"{n}:{t.strip()[:40]}" for n, t in TEMPLATES])
def test_every_dynamic_sql_template_parses_or_is_documented_syntax(name: str, template: str) -> None:
    sql = fill(template)
    if not unparsable(sql):
        return
    if _documented(sql):
        return
    # Templates that use VECTOR_SEARCH: the rest must parse with the call replaced by a table.
    if VECTOR_SEARCH_EARLIER.search(sql) or VECTOR_SEARCH_V3.search(sql):
        plain = re.sub(r"VECTOR_SEARCH\(.*?\)\s+AS\s+s", "dbo.search_result AS s", sql, flags=re.S)
        plain = plain.replace("WITH APPROXIMATE", "")
        assert not unparsable(plain), f"{name}: {unparsable(plain)[0][:300]}"
        return
    raise AssertionError(f"{name}: neither parses nor matches a documented syntax: {unparsable(sql)[0][:300]}\n{sql}")


def test_there_are_templates_for_every_procedure_that_builds_sql() -> None:
    users = {p.file for p in procedures().values() if "sp_executesql @" in p.code}
    assert users <= {n for n, _ in TEMPLATES}, "dynamic SQL is built from templates"
    assert len(TEMPLATES) >= 10


@pytest.mark.parametrize("name", ["search", "search_chunks"])
def test_both_vector_search_forms_exist(name: str) -> None:
    search = procedures()[name].text
    assert VECTOR_SEARCH_EARLIER.search(fill(search.replace("''", "'"))), "SQL Server 2025: TOP_N"
    assert VECTOR_SEARCH_V3.search(fill(search.replace("''", "'"))), "Azure SQL v3 index: TOP (n) WITH APPROXIMATE"
    assert "EXEC sqlembed.vector_index_version" in search
    assert "JSON_VALUE(vi.build_parameters, '$.Version')" in procedures()["vector_index_version"].text


def test_ai_generate_embeddings_uses_the_documented_syntax() -> None:
    uses = [
        (p.name, m.group(0))
        for p in procedures().values()
        for m in re.finditer(r"AI_GENERATE_EMBEDDINGS\s*\(.*?\)\s*\)?", p.text, re.S)
    ]
    assert uses
    for name, use in uses:
        assert AGE_SYNTAX.search(use), f"{name}: {use}"


# --- the transaction contract (sql/README.md) ---------------------------------------------------

WRITE = re.compile(r"\b(INSERT|UPDATE|MERGE|DELETE)\s+(?!#|@)(sqlembed\.|\w+\s+SET\b|t\b|b\b|p\b)", re.I)
# log_error and invoke are the contract's two named exceptions (they must never doom a caller's
# transaction); everything else that writes a table follows it.
EXEMPT = {"log_error", "invoke"}


def writers() -> list[Procedure]:
    out = []
    for p in procedures().values():
        body = p.body
        if p.name in EXEMPT:
            continue
        if WRITE.search(body) or "BEGIN TRANSACTION" in body.upper() or "CREATE VECTOR INDEX" in p.text.upper():
            out.append(p)
    return out


def test_the_writers_are_the_expected_ones() -> None:
    assert {p.name for p in writers()} >= {"embed_rows", "submit_job", "job_request", "create_vector_index"}


@pytest.mark.parametrize("p", writers(), ids=lambda p: p.name)
def test_writers_follow_the_transaction_contract(p: Procedure) -> None:
    body = p.body.upper()
    assert "SET XACT_ABORT ON" in body, "XACT_ABORT ON"
    assert "SET IMPLICIT_TRANSACTIONS OFF" in body, "its own transactions only (a client's implicit mode off)"
    assert "BEGIN TRY" in body and "BEGIN CATCH" in body, "TRY/CATCH"
    refuses = re.search(
        r"IF\s+(@@TRANCOUNT|@ENTRY_TRANCOUNT)\s*>\s*0\s+(SET|SELECT)\s+@PROBLEM\b[^;]*;?[^;]*@CODE\s*=\s*409",
        body,
        re.S,
    )
    own_flag = re.search(r"@OWN\s+BIT\s*=\s*CASE\s+WHEN\s+@@TRANCOUNT\s*=\s*0", body)
    assert refuses or own_flag, "opens its own transaction only when none is open, or refuses inside one"
    for m in re.finditer(r"BEGIN\s+TRANSACTION", body):
        before = body[max(0, m.start() - 60) : m.start()]
        assert refuses or "IF @OWN = 1" in before, f"unguarded BEGIN TRANSACTION at {m.start()}"
    # Never roll back a transaction it did not open, and never on the way out of a success.
    for m in re.finditer(r"ROLLBACK\s+TRANSACTION", body):
        before = body[max(0, m.start() - 80) : m.start()]
        guarded = re.search(
            r"IF\s+(@OWN\s*=\s*1\s+AND\s+)?@@TRANCOUNT\s*>\s*(@ENTRY_TRANCOUNT|0)\s*$", before.strip() + " "
        )
        assert guarded, f"unguarded ROLLBACK: ...{before[-60:]}"
        if "@ENTRY_TRANCOUNT" not in before and "@OWN = 1" not in before:
            assert refuses and _in_catch(body, m.start()), (
                "a bare @@TRANCOUNT > 0 guard only inside CATCH of a refusing procedure"
            )
    assert re.search(r"RETURN\s+@RC|RETURN\s+@CODE|RETURN\s+CASE", body), "non-zero return on failure"
    assert "@ERROR" in body, "an @error on failure"


def _in_catch(body: str, pos: int) -> bool:
    start = body.rfind("BEGIN CATCH", 0, pos)
    return start >= 0 and body.find("END CATCH", start) > pos


def test_every_procedure_switches_implicit_transactions_off() -> None:
    for p in procedures().values():
        assert "SET IMPLICIT_TRANSACTIONS OFF" in p.body.upper(), p.name


def test_the_two_exceptions_never_doom_a_callers_transaction() -> None:
    for name in EXEMPT:
        body = procedures()[name].body.upper()
        assert "SET XACT_ABORT OFF" in body and "BEGIN TRANSACTION" not in body, name
    assert "IF XACT_STATE() = -1" in procedures()["log_error"].body.upper(), "no write into a doomed transaction"
    assert not WRITE.search(procedures()["invoke"].body), "invoke writes nothing"


def test_embed_rows_refuses_inside_a_transaction_before_touching_anything() -> None:
    body = procedures()["embed_rows"].body.upper()
    refusal = body.index("IF @ENTRY_TRANCOUNT > 0")
    for first_effect in ("SP_GETAPPLOCK", "SQLEMBED.INVOKE", "CREATE TABLE #"):
        assert refusal < body.index(first_effect), first_effect


def test_applocks_are_released_on_every_exit() -> None:
    body = procedures()["embed_rows"].body_text.upper()
    assert body.count("SP_GETAPPLOCK") == 1 and "@LOCKOWNER = N'SESSION'" in body
    release = body.index("CLEANUP:")
    assert "SP_RELEASEAPPLOCK" in body[release:], "released at the one exit label"
    # Every path after the lock leads to the cleanup label: no RETURN between them.
    assert "RETURN" not in body[body.index("SET @LOCKED = 1") : release]


# --- credentials, sizes, collations, upserts ---------------------------------------------------


def test_no_procedure_reads_the_credential_catalog() -> None:
    for p in procedures().values():
        assert "database_scoped_credentials" not in p.code.lower(), (
            f"{p.name}: sys.database_scoped_credentials is empty for callers without CONTROL"
        )
    config = next(f for f in FILES if f.name == "020_config.sql")
    assert "use_credential" in config.text and "database_scoped_credentials" in config.text


def test_vector_sizes_come_from_the_catalog() -> None:
    for f in FILES:
        assert not re.search(r"max_length\s*-\s*8", f.text), f"{f.name}: float16 vectors are 2 bytes per dimension"
    for name in ("embed_rows", "search", "self_test"):
        assert "vector_dimensions" in procedures()[name].text and "vector_base_type_desc" in procedures()[name].text


def test_temp_table_strings_carry_the_database_collation() -> None:
    for p in procedures().values():
        for m in re.finditer(r"CREATE\s+TABLE\s+(#\w+)\s*\((.*?)\);", p.text, re.S | re.I):
            for col in re.split(r",(?![^(]*\))", m.group(2)):
                if re.search(r"\b(n?varchar|n?char)\b", col, re.I):
                    assert "COLLATE DATABASE_DEFAULT" in col.upper(), f"{p.name} {m.group(1)}: {col.strip()}"


def test_keys_join_back_through_their_own_type_and_collation() -> None:
    for name, template in TEMPLATES:
        for m in re.finditer(r"t\.\{k\}\s*=\s*(\w+)\.k\b(?!\w)", template):
            raise AssertionError(
                f"{name}: compares the key with a temp-table text ({m.group(0)}); use CAST(x.k AS {{kt}}){{kc}}"
            )
        for m in re.finditer(r"CAST\(t\.\{k\} AS nvarchar\(4000\)\)(?!\s*COLLATE)", template):
            line = template[template.rfind("\n", 0, m.start()) : m.end() + 40]
            assert "HASHBYTES" in line, f"{name}: a key as text outside a hash needs COLLATE DATABASE_DEFAULT: {line}"


def test_upserts_into_shared_tables_hold_their_range() -> None:
    from sqlembed.db.targets.mssql import MssqlTarget

    sources = [(f.name, f.text) for f in FILES if f.kind == "object"]
    sources.append(("db/targets/mssql.py", MssqlTarget.write_sql.__doc__ or ""))
    for name, text in sources:
        for m in re.finditer(r"MERGE\s+(sqlembed\.\w+|\{?\w+\}?)(\s+WITH\s*\(HOLDLOCK\))?", mask(text), re.I):
            assert m.group(2), f"{name}: MERGE {m.group(1)} without WITH (HOLDLOCK) races into PK error 2627"


def test_python_bulk_writer_holds_its_range_too() -> None:
    from sqlembed.db.targets.base import EmbeddingId, TableInfo
    from sqlembed.db.targets.mssql import MssqlTarget

    info = TableInfo(
        schema="dbo",
        name="docs",
        key="id",
        text="body",
        vector="embedding",
        key_type="int",
        key_collation=None,
        columns=frozenset({"id", "body", "embedding"}),
        state_source="[dbo].[docs]",
    )
    target = MssqlTarget.__new__(MssqlTarget)
    target.quote = lambda s: f"[{s}]"  # type: ignore[method-assign]
    for vt in ("float32", "float16"):
        sql = target.write_sql(info, EmbeddingId("m-fp32", 384, vt))  # type: ignore[arg-type]
        merges = re.findall(r"MERGE\s+\S+(\s+WITH\s*\(HOLDLOCK\))?", sql)
        assert merges and all(merges), sql
        assert f"VECTOR(384{', float16' if vt == 'float16' else ''})" in sql
        assert "CONVERT(binary(32), j.hx, 2)" in sql and "SET XACT_ABORT ON" in sql


def test_vectors_are_set_with_try_cast() -> None:
    apply = next(t for n, t in TEMPLATES if n == "060_embed_rows.sql" and t.lstrip().startswith("UPDATE t SET"))
    set_clause = apply[apply.index("SET") : apply.index("OUTPUT")]
    assert "TRY_CAST(" in set_clause, "evaluation order is not guaranteed: the SET must not fail where WHERE filtered"


def test_requests_are_sized_as_utf8_json() -> None:
    scan = next(t for n, t in TEMPLATES if n == "060_embed_rows.sql" and "INSERT #pending" in t)
    assert "STRING_ESCAPE" in scan and "_UTF8" in scan
    assert re.search(
        r"CAST\(STRING_ESCAPE\(.*?\)\s+COLLATE\s+Latin1_General_100_CI_AS_SC_UTF8\s+AS\s+varchar\(max\)\)", scan, re.S
    ), "COLLATE inside the CAST, or non-Latin text is converted in the database code page"


def test_external_model_options_in_documented_order() -> None:
    model = next(f for f in FILES if f.name == "030_external_model.sql").text
    assert model.index("@credential_option") < model.index("PARAMETERS = N"), "CREDENTIAL before PARAMETERS"
    assert DOCUMENTED["CREATE/ALTER EXTERNAL MODEL (B1, B2)"].match(
        "CREATE EXTERNAL MODEL [sqlembed] WITH (LOCATION = N'https://e/api/embed', API_FORMAT = N'Ollama', "
        "MODEL_TYPE = EMBEDDINGS, MODEL = N'm', CREDENTIAL = [https://e], PARAMETERS = N'{}');"
    )
    assert not DOCUMENTED["CREATE/ALTER EXTERNAL MODEL (B1, B2)"].match(
        "CREATE EXTERNAL MODEL [sqlembed] WITH (LOCATION = N'https://e/api/embed', API_FORMAT = N'Ollama', "
        "MODEL_TYPE = EMBEDDINGS, MODEL = N'm', PARAMETERS = N'{}', CREDENTIAL = [https://e]);"
    )


def test_retry_count_is_passed_only_where_the_build_has_it() -> None:
    invoke = procedures()["invoke"].code
    for m in re.finditer(r"@retry_count\s*=", invoke):
        branch = invoke[invoke.rfind("IF ", 0, m.start()) : m.start()]
        assert "@rest_retry = 1" in branch, branch


def test_vector_index_preconditions() -> None:
    p = procedures()["create_vector_index"].text
    assert "PREVIEW_FEATURES" in p and "EngineEdition" in p
    # A composite primary key with one INT column must not pass: the INT test is on the group.
    assert re.search(r"HAVING COUNT\(\*\) = 1 AND MAX\(TYPE_NAME\(c\.system_type_id\)\) = N'int'", p)
    grants = next(f for f in FILES if f.name == "900_grants.sql").text
    assert "sqlembed.create_vector_index TO sqlembed_user" in grants


def test_float16_deployments_render_half_precision_vectors() -> None:
    f = next(f for f in FILES if f.name == "050_embed_text.sql")
    sql = substitute(f.batches()[1], FLOAT16, where=f.name)
    assert "VECTOR(384, float16)" in sql and not unparsable(sql)
