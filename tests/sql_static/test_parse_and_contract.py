"""The T-SQL, parsed and held to its contracts without a server.

- Every batch of the rendered deployment script, every batch of every migration (the script runs
  them as string literals, which its own parse cannot see into), every dynamic-SQL template
  (placeholders filled with sample names) and the credential's dynamic SQL (built by
  concatenation, rendered here with a sample name and secret) parses with sqlfluff's T-SQL
  dialect; the few SQL Server 2025 statements it does not know must match their documented syntax
  instead.
- The transaction contract of sql/README.md, by rule, for every procedure that writes: in its own
  statements, in its dynamic SQL or through a procedure it runs.
- Collations (a key converted to its column's type is collated first), HOLDLOCK upserts (in code,
  never in a comment or docstring), TRY_CAST into VECTOR, vector sizes from the catalog, the
  credential decided at deploy time, CREDENTIAL before PARAMETERS.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from sqlfluff.core import FluffConfig, Linter

from sqlembed.db.sqlfiles import Batch, SqlFile, substitute
from sqlembed.db.variables import resolve
from tests.sql_static.tsql import (
    AGE_SYNTAX,
    DOCUMENTED,
    EXEMPT,
    FILES,
    FLOAT16,
    NAME,
    VALUES,
    VECTOR_SEARCH_EARLIER,
    VECTOR_SEARCH_V3,
    Procedure,
    View,
    balanced,
    code_of,
    executed_sql,
    fill,
    for_sqlfluff,
    json_secret,
    procedures,
    python_sql,
    refusal,
    rendered_batches,
    templates,
    views,
    writers,
    writes,
    written_tables,
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
MSSQL_PY = Path(__file__).parents[2] / "python" / "sqlembed" / "db" / "targets" / "mssql.py"


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


MIGRATIONS = [(f.name, b) for f in FILES if f.kind == "migration" for b in f.batches()]


@pytest.mark.parametrize(("name", "batch"), MIGRATIONS, ids=[f"{n}:{b.line}" for n, b in MIGRATIONS])
def test_every_migration_batch_parses(name: str, batch: Batch) -> None:
    # The rendered script carries each migration as N'...' literals run by sp_executesql (one
    # transaction with its journal row), so the rendered-batch parse never sees inside them.
    sql = substitute(batch, VALUES, where=name)
    problems = unparsable(sql)
    assert not problems or _documented(sql), f"{name}:{batch.line}: {problems[0][:400]}"


def test_the_parser_refuses_a_broken_migration() -> None:
    assert unparsable("CREATE TABLE sqlembed.x (a int,, b int);\n")
    assert unparsable("CREATE TABLE sqlembed.x (a int NOT NULL\n")


# The credential's statement is concatenated from literals and variables (no {placeholders}):
# rendered from its own DECLAREs and SETs with a secret that needs ' " \ / escaped, in both forms
# (CREATE on a first deploy, ALTER after), once with a plain name (sqlfluff parses it) and once
# with a name that needs ] escaped (an IPv6 URL: sqlfluff cannot lex ]] in a bracketed name, so
# that one is matched against the documented syntax).
CREDENTIAL_KEY = "k'e\"y\\/é"
CREDENTIAL_SAMPLES = [
    resolve({"SQLEMBED_URL": url, "SQLEMBED_API_KEY": CREDENTIAL_KEY})
    for url in ("https://embed.example.internal:8888", "https://[::1]:8888")
]
_CREDENTIAL_DDL = re.compile(r"\s*(CREATE|ALTER)\s+DATABASE\s+SCOPED\s+CREDENTIAL\b", re.I)


def credential_statements(files: list[SqlFile], values: dict[str, str]) -> list[str]:
    """Every CREATE/ALTER DATABASE SCOPED CREDENTIAL the object files run as dynamic SQL."""
    out = []
    for f in files:
        if f.kind != "object":
            continue
        for b in f.batches():
            for run in executed_sql(substitute(b, values, where=f.name)):
                out += [sql for sql in run.values or () if _CREDENTIAL_DDL.match(sql)]
    return out


def credential_problems(files: list[SqlFile]) -> list[str]:
    problems = []
    for values in CREDENTIAL_SAMPLES:
        problems += _credential_problems(credential_statements(files, values), values["SQLEMBED_CREDENTIAL"])
    return problems


def _credential_problems(statements: list[str], credential: str) -> list[str]:
    problems = [
        f"no {verb} DATABASE SCOPED CREDENTIAL could be rendered from the object files' dynamic SQL"
        for verb in ("CREATE", "ALTER")
        if not any(s.lstrip().upper().startswith(verb) for s in statements)
    ]
    for sql in statements:
        if unparsable(sql) and not _documented(sql):
            problems.append(f"neither parses nor matches the documented syntax: {sql}")
        name = re.search(r"CREDENTIAL\s+\[((?:[^\]]|\]\])+)\]", sql)
        if not name or name.group(1).replace("]]", "]") != credential:
            problems.append(f"the credential's name does not survive quoting: {sql}")
        try:
            secret = json_secret(sql)
        except ValueError:
            secret = None
        if secret != {"api-key": CREDENTIAL_KEY}:
            problems.append(f'the secret is not the JSON header object {{"api-key": <the key>}}: {sql}')
    return problems


def test_the_credential_renders_to_its_documented_syntax() -> None:
    problems = credential_problems(FILES)
    assert not problems, "\n".join(problems)


GOOD_CREDENTIAL = """
DECLARE @name nvarchar(4000) = N'$(SQLEMBED_CREDENTIAL)', @key nvarchar(4000) = N'$(SQLEMBED_API_KEY)';
DECLARE @secret nvarchar(max) = N'{"api-key":"' + STRING_ESCAPE(@key, 'json') + N'"}';
DECLARE @verb nvarchar(10) = CASE WHEN EXISTS (SELECT 1 FROM sys.database_scoped_credentials WHERE name = @name)
    THEN N'ALTER' ELSE N'CREATE' END;
DECLARE @sql nvarchar(max) = @verb + N' DATABASE SCOPED CREDENTIAL [' + REPLACE(@name, N']', N']]') + N']'
    + N' WITH IDENTITY = ''HTTPEndpointHeaders'', SECRET = N''' + REPLACE(@secret, N'''', N'''''') + N''';';
EXEC sys.sp_executesql @sql;
GO
"""


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("REPLACE(@secret, N'''', N'''''')", "@secret"),  # the secret spliced without doubling its quotes
        ("REPLACE(@name, N']', N']]')", "@name"),  # the name bracketed without escaping ]
        ("STRING_ESCAPE(@key, 'json')", "@key"),  # JSON built without escaping the key
        ("N' WITH IDENTITY", "N' WITH IDENTITY_X"),  # not the documented syntax
    ],
)
def test_the_credential_rule_fails_on_a_bad_credential(old: str, new: str) -> None:
    assert credential_problems([SqlFile("object", Path("010_credential.sql"), GOOD_CREDENTIAL)]) == []
    assert old in GOOD_CREDENTIAL
    assert credential_problems([SqlFile("object", Path("010_credential.sql"), GOOD_CREDENTIAL.replace(old, new))])


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

# Who writes (tsql.writes): INSERT [INTO], UPDATE, DELETE [FROM], MERGE, TRUNCATE and table DDL on
# a permanent table, in the procedure's statements, in its dynamic SQL, or in a sqlembed procedure
# it runs (sqlembed.log_error aside); temporary tables and table variables do not count.


def test_the_writers_are_the_expected_ones() -> None:
    assert {p.name for p in writers()} >= {"embed_rows", "submit_job", "create_vector_index"}


@pytest.mark.parametrize(
    ("statement", "table"),
    [
        ("INSERT INTO sqlembed.jobs (job_id) VALUES (N'1');", "sqlembed.jobs"),
        ("INSERT sqlembed.jobs (job_id) SELECT N'1';", "sqlembed.jobs"),
        ("DELETE FROM sqlembed.jobs WHERE job_id = N'1';", "sqlembed.jobs"),
        ("DELETE j FROM sqlembed.jobs AS j WHERE j.job_id = N'1';", "sqlembed.jobs"),
        ("UPDATE j SET state = N'x' FROM sqlembed.jobs AS j JOIN #x AS x ON x.id = j.job_id;", "sqlembed.jobs"),
        (
            "MERGE INTO sqlembed.jobs AS j USING (SELECT 1 AS a) AS x ON 1 = 0 "
            "WHEN NOT MATCHED THEN INSERT (a) VALUES (1);",
            "sqlembed.jobs",
        ),
        ("TRUNCATE TABLE sqlembed.jobs;", "sqlembed.jobs"),
        # In dynamic SQL: a template, or a literal run as it is.
        ("SET @sql = N'UPDATE t SET t.{v} = NULL FROM {src} AS t;';", "{src}"),
        ("EXEC sys.sp_executesql N'INSERT INTO dbo.x (a) VALUES (1);';", "dbo.x"),
        ("SET @sql = N'CREATE VECTOR INDEX {name} ON {src} ({v}) WITH (METRIC = ''cosine'');';", "{src}"),
    ],
)
def test_writes_are_found(statement: str, table: str) -> None:
    assert written_tables(statement) == [table]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO #t (a) VALUES (1);",
        "INSERT @t (a) SELECT 1;",
        "DELETE FROM #t;",
        "DELETE b FROM #batch AS b WHERE b.a = 1;",
        "UPDATE b SET b.a = 1 FROM #batch AS b JOIN dbo.docs AS t ON t.id = b.id;",
        "-- INSERT INTO sqlembed.jobs (a) VALUES (1);",
        "PRINT N'you need INSERT and DELETE on the table, or CREATE TABLE and ALTER on its schema';",
    ],
)
def test_temporary_tables_and_prose_are_not_writes(statement: str) -> None:
    assert written_tables(statement) == []


RUNS_A_WRITER = """
CREATE OR ALTER PROCEDURE sqlembed.record AS
BEGIN
    UPDATE sqlembed.jobs SET state = N'x';
END;
GO
CREATE OR ALTER PROCEDURE sqlembed.outer_one AS
BEGIN
    EXEC sqlembed.record;
END;
GO
CREATE OR ALTER PROCEDURE sqlembed.logs_only AS
BEGIN
    EXEC sqlembed.log_error @source = N'x', @code = 1, @message = N'm';
END;
GO
CREATE OR ALTER PROCEDURE sqlembed.log_error AS
BEGIN
    INSERT sqlembed.error_log (source) VALUES (N'x');
END;
GO
"""


def test_a_procedure_that_runs_a_writer_writes_but_logging_does_not() -> None:
    procs = procedures([SqlFile("object", Path("070_jobs.sql"), RUNS_A_WRITER)])
    assert writes(procs["outer_one"], procs) == ["sqlembed.jobs (through sqlembed.record)"]
    assert writes(procs["logs_only"], procs) == []


@pytest.mark.parametrize("p", writers(), ids=lambda p: p.name)
def test_writers_follow_the_transaction_contract(p: Procedure) -> None:
    body = p.body.upper()
    assert "SET XACT_ABORT ON" in body, "XACT_ABORT ON"
    assert "SET IMPLICIT_TRANSACTIONS OFF" in body, "its own transactions only (a client's implicit mode off)"
    assert "BEGIN TRY" in body and "BEGIN CATCH" in body, "TRY/CATCH"
    refuses = refusal(body)
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
    assert not writes(procedures()["invoke"]), "invoke writes nothing"


def test_embed_rows_refuses_inside_a_transaction_before_touching_anything() -> None:
    body = procedures()["embed_rows"].body.upper()
    refused = refusal(body)
    assert refused, "embed_rows refuses inside a caller's transaction (409)"
    effects = r"SP_GETAPPLOCK|SQLEMBED\.INVOKE|CREATE TABLE #|BEGIN TRAN|\b(MERGE|INSERT|UPDATE|DELETE)\b"
    first_effect = re.search(effects, body)
    assert first_effect and refused.start() < first_effect.start(), first_effect


def test_the_run_lock_is_released_on_every_exit() -> None:
    # One run per table (an applock) or per destination (a lease row in sqlembed.run_leases).
    body = procedures()["embed_rows"].body_text.upper()
    release = body.index("CLEANUP:")
    assert re.search(r"SP_RELEASEAPPLOCK|DELETE\s+(FROM\s+)?SQLEMBED\.RUN_LEASES\b", body[release:]), (
        "released at the one exit label"
    )
    if "SP_GETAPPLOCK" in body:
        assert body.count("SP_GETAPPLOCK") == 1 and "@LOCKOWNER = N'SESSION'" in body
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


def key_cast_problems(templates: list[tuple[str, str]]) -> list[str]:
    """A key travels as nvarchar text in the database's collation and is converted back to its
    column's type ({kt}) to join the table. Collated to the column's collation first, a varchar
    key converts through that collation's code page; cast first, it converts through the
    database's, and a key outside it (Cyrillic in a Latin1 database) becomes '?' and never matches
    again. So every CAST(... AS {kt}) collates inside; CAST(x AS {kt}){kc} is the lossy shape."""
    problems, casts = [], 0
    for name, template in templates:
        code = code_of(template)
        for m in re.finditer(r"t\.\{k\}\s*=\s*(\w+)\.k\b(?!\w)", code):
            problems.append(f"{name}: compares the key as text ({m.group(0)}); use CAST(x.k{{kc}} AS {{kt}})")
        for m in re.finditer(r"\bCAST\s*\(", code, re.I):
            inner = code[m.end() : balanced(code, m.end() - 1) - 1]
            target = re.search(r"\s+AS\s+(\{kt\})\s*$", inner, re.I)
            if not target:
                continue
            casts += 1
            if not re.search(r"\bCOLLATE\b|\{kc\}|\{kcoll\}", inner[: target.start()], re.I):
                shape = template[m.start() : balanced(code, m.end() - 1) + 6]
                problems.append(
                    f"{name}: {shape.strip()!r} casts the key before collating it (lossy); "
                    "collate inside: CAST(x{kc} AS {kt})"
                )
        for m in re.finditer(r"CAST\(t\.\{k\} AS nvarchar\(4000\)\)(?!\s*COLLATE)", code):
            line = code[code.rfind("\n", 0, m.start()) : m.end() + 40]
            if "HASHBYTES" not in line:
                problems.append(f"{name}: a key as text outside a hash needs COLLATE DATABASE_DEFAULT: {line.strip()}")
    if not casts:
        problems.append("no template converts a key back to its column's type (CAST(... AS {kt})): nothing checked")
    return problems


def test_keys_join_back_through_their_own_type_and_collation() -> None:
    problems = key_cast_problems(TEMPLATES)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "join",
    [
        "JOIN {src} AS t ON t.{k} = CAST(b.k AS {kt}){kc}",  # cast, then collate: lossy
        "JOIN {src} AS t ON t.{k} = CAST(b.k AS {kt}) COLLATE Latin1_General_BIN2",
        "JOIN {src} AS t ON t.{k} = CAST(b.k AS {kt})",
        "JOIN {src} AS t ON t.{k} = b.k",  # the key compared as temp-table text
    ],
)
def test_the_key_cast_rule_fails_on_a_lossy_join(join: str) -> None:
    good = "UPDATE b SET b.txt = t.{t} FROM #batch AS b JOIN {src} AS t ON t.{k} = CAST(b.k{kc} AS {kt});"
    assert key_cast_problems([("fixture", good)]) == []
    assert key_cast_problems([("fixture", good.replace("JOIN {src} AS t ON t.{k} = CAST(b.k{kc} AS {kt})", join))])


# MERGE into a table others write races into PK error 2627 without HOLDLOCK (or SERIALIZABLE). Read
# from code only: the object files' statements and dynamic SQL, and the bulk writer's SQL strings
# (python/sqlembed/db/targets/mssql.py, docstrings and comments left out).
_MERGE = re.compile(
    rf"\bMERGE\s+(?:TOP\s*\([^)]*\)\s*)?(?:INTO\s+)?(?P<t>{NAME})(?P<held>\s+WITH\s*\(\s*(?:HOLDLOCK|SERIALIZABLE)\s*\))?",
    re.I,
)


def merge_sources(files: list[SqlFile], mssql_py: str) -> list[tuple[str, View]]:
    out = [(f.name, v) for f in files if f.kind == "object" for v in views(f.text)]
    return out + [("db/targets/mssql.py", View(s, code_of(s))) for s in python_sql(mssql_py)]


def unheld_merges(sources: list[tuple[str, View]]) -> tuple[int, list[str]]:
    """How many MERGEs the sources hold, and each one without HOLDLOCK."""
    merges = [(name, v, m) for name, v in sources for m in _MERGE.finditer(v.code)]
    return len(merges), [
        f"{name}: MERGE {v.text[m.start('t') : m.end('t')]} without WITH (HOLDLOCK) races into PK error 2627"
        for name, v, m in merges
        if not m.group("held")
    ]


def test_upserts_into_shared_tables_hold_their_range() -> None:
    sources = merge_sources(FILES, MSSQL_PY.read_text("utf-8"))
    for where in ("060_embed_rows.sql", "db/targets/mssql.py"):
        assert unheld_merges([s for s in sources if s[0] == where])[0], f"{where}: no MERGE found, nothing checked"
    assert not unheld_merges(sources)[1], "\n".join(unheld_merges(sources)[1])


@pytest.mark.parametrize(
    ("sql", "mssql_py"),
    [
        ("MERGE sqlembed.embedding_state AS s USING #x AS x ON 1 = 0 WHEN NOT MATCHED THEN INSERT (a) VALUES (1);", ""),
        ("SET @sql = N'MERGE INTO {target} AS t USING #x AS x ON 1 = 0 WHEN MATCHED THEN DELETE;';", ""),
        # Held only in a comment, or only in the docstring, not in the code.
        (
            "-- MERGE sqlembed.jobs WITH (HOLDLOCK)\n"
            + "MERGE sqlembed.jobs USING #x AS x ON 1 = 0 WHEN MATCHED THEN DELETE;",
            "",
        ),
        ("", 'def w():\n    """MERGE {STATE} WITH (HOLDLOCK)"""\n    return f"MERGE {STATE} AS s USING x ON 1 = 0"\n'),
    ],
)
def test_the_holdlock_rule_fails_on_an_unheld_merge(sql: str, mssql_py: str) -> None:
    count, problems = unheld_merges(merge_sources([SqlFile("object", Path("060_embed_rows.sql"), sql)], mssql_py))
    assert count and problems


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
    # The scan that sizes each pending row (whatever its temporary table is called).
    scan = next(
        t
        for n, t in TEMPLATES
        if n == "060_embed_rows.sql" and re.search(r"INSERT\s+(INTO\s+)?#", t) and "DATALENGTH" in t
    )
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
