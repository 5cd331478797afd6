"""Rules that hold sql/ to its permission model and to the transaction and state guarantees the
design promises, read from the code (comments and prose never count):

- a. Rights: nobody but the principal sqlembed.invoke runs as gets EXECUTE ANY EXTERNAL ENDPOINT or
  REFERENCES on a DATABASE SCOPED CREDENTIAL; sqlembed_user gets EXECUTE on the public procedures
  and the external model (and SELECT on sqlembed views), never a right on a sqlembed table. GRANTs
  built in dynamic SQL count.
- b. Calling out: sqlembed.invoke alone calls sp_invoke_external_rest_endpoint, and holds the right
  to through a fixed principal: WITH EXECUTE AS OWNER, WITH EXECUTE AS a user without login, or a
  certificate signature added after every CREATE OR ALTER of it (which drops signatures), whose
  private key is then removed. That principal holds exactly those two rights.
- c. Read-only procedures run with XACT_ABORT OFF: a failure in them never dooms a caller's
  transaction.
- d. No INSERT ... EXEC (Msg 8164 when a caller nests one around a procedure that has one).
- e. The state key contains the destination, in the migrations, in sql/objects and in the bulk
  writer (python/sqlembed/db/targets/mssql.py).
- f. Procedures that change something outside the database (a job submitted or cancelled on the
  service) refuse to run inside a caller's transaction (409) before calling out; job_status writes
  nothing.

Each rule is a function of the sources it reads (``Sources``), so it also runs on fixtures (each
rule fails on a small bad snippet below) and on an older checkout.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sqlembed.db.sqlfiles import Kind, SqlFile, sql_root
from tests.sql_static.tsql import (
    CALL,
    FILES,
    NAME,
    View,
    body_start,
    code_of,
    flatten,
    grants,
    hashes,
    opens_transactions,
    procedures,
    python_sql,
    read_only,
    refusal,
    views,
    writes,
)

MSSQL_PY = Path(__file__).parents[2] / "python" / "sqlembed" / "db" / "targets" / "mssql.py"


@dataclass(frozen=True)
class Sources:
    files: tuple[SqlFile, ...]
    mssql_py: str  # the bulk writer's source
    readme: str  # sql/README.md: which procedures are public


def current() -> Sources:
    return Sources(tuple(FILES), MSSQL_PY.read_text("utf-8"), (sql_root() / "README.md").read_text("utf-8"))


Rule = Callable[[Sources], list[str]]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[name] = fn
        return fn

    return register


# --- b. who calls out, and as whom --------------------------------------------------------------

ENDPOINT = "EXECUTE ANY EXTERNAL ENDPOINT"
_CREDENTIAL_RIGHT = re.compile(r"REFERENCES ON DATABASE SCOPED CREDENTIAL::\S+", re.I)
_CALLS_OUT = re.compile(r"\bEXEC(?:UTE)?\s+(?:@\w+\s*=\s*)?(?:\[?sys\]?\.)?\[?sp_invoke_external_rest_endpoint\b", re.I)
_INVOKE = r"(?:OBJECT::)?\[?sqlembed\]?\.\[?invoke\]?"


@dataclass(frozen=True)
class InvokeRights:
    form: str  # "owner", "user" (EXECUTE AS a user without login), "signature" or "" (none)
    principals: frozenset[str]  # who holds the rights to call out (none for OWNER: dbo holds all)
    problems: tuple[str, ...]


def _flat_positions(files: tuple[SqlFile, ...], rx: str) -> list[tuple[int, int, re.Match[str]]]:
    """(file index, offset, match) of a pattern in every file's flattened text, in deploy order."""
    return [(i, m.start(), m) for i, f in enumerate(files) for m in re.finditer(rx, flatten(f.text), re.I | re.S)]


def invoke_rights(files: tuple[SqlFile, ...]) -> InvokeRights:
    procs = procedures(files)
    invoke = procs.get("invoke")
    if invoke is None:
        return InvokeRights("", frozenset(), ("no sqlembed.invoke",))
    created = _flat_positions(files, rf"\bCREATE\s+OR\s+ALTER\s+PROC(?:EDURE)?\s+{_INVOKE}(?![\w\]])")
    last = max(((i, at) for i, at, _ in created), default=(len(files), 0))
    header = invoke.code[: body_start(invoke)]
    as_ = re.search(r"\bWITH\b[^;]*?\bEXECUTE\s+AS\s+(OWNER|SELF|CALLER|N?'[^']*')", header, re.I)
    if as_ and as_.group(1).upper() == "OWNER":
        return InvokeRights("owner", frozenset(), ())
    if as_ and "'" in as_.group(1):
        quoted = invoke.text[as_.start(1) : as_.end(1)]
        user = quoted[quoted.index("'") + 1 : -1]
        # Impersonated, never logged in as: a user without login, created before the procedure names it.
        made = [
            (i, at)
            for i, at, _ in _flat_positions(files, rf"\bCREATE\s+USER\s+\[?{re.escape(user)}\]?\s+WITHOUT\s+LOGIN\b")
        ]
        problems = (
            ()
            if any(pos < last for pos in made)
            else (f"sqlembed.invoke runs WITH EXECUTE AS '{user}', which no file creates WITHOUT LOGIN before it",)
        )
        return InvokeRights("user", frozenset({user}), problems)
    if as_:
        fixed = f"sqlembed.invoke runs WITH EXECUTE AS {as_.group(1)}: not a fixed principal"
        return InvokeRights("", frozenset(), (fixed,))
    # Signed: in an object file (every deploy), after the last CREATE OR ALTER (which drops signatures).
    signed = [
        (i, at, m)
        for i, at, m in _flat_positions(files, rf"\bADD\s+SIGNATURE\s+TO\s+{_INVOKE}\s+BY\s+CERTIFICATE\s+\[?(\w+)\]?")
        if files[i].kind == "object" and (i, at) > last
    ]
    if not signed:
        return InvokeRights(
            "",
            frozenset(),
            (
                "sqlembed.invoke holds the right to call out through no fixed principal: neither WITH EXECUTE AS "
                "(OWNER, or a user without login) nor ADD SIGNATURE TO sqlembed.invoke BY CERTIFICATE in an object "
                "file that runs after it",
            ),
        )
    problems: list[str] = []
    users: set[str] = set()
    for i, at, m in signed:
        cert = m.group(1)
        users |= {
            u.group(1)
            for _, _, u in _flat_positions(files, rf"\bCREATE\s+USER\s+\[?(\w+)\]?\s+FROM\s+CERTIFICATE\s+\[?{cert}\]?")
        }
        # The private key goes once the module is signed: nobody can sign anything else with it.
        if not re.search(r"\bREMOVE\s+PRIVATE\s+KEY\b", flatten(files[i].text)[at:], re.I):
            problems.append(f"{files[i].name}: certificate {cert} signs sqlembed.invoke but its private key is kept")
    if not users:
        problems.append("no user is created FROM CERTIFICATE for the certificate that signs sqlembed.invoke")
    return InvokeRights("signature", frozenset(users), tuple(problems))


@rule("b_invoke_alone_calls_out_as_a_fixed_principal")
def invoke_alone_calls_out(src: Sources) -> list[str]:
    procs = procedures(src.files)
    callers = sorted(
        p.name for p in procs.values() if any(_CALLS_OUT.search(v.code) for v in views(p.text[body_start(p) :]))
    )
    problems = (
        []
        if callers == ["invoke"]
        else [f"the procedures that call sp_invoke_external_rest_endpoint are {callers}; only sqlembed.invoke may"]
    )
    rights = invoke_rights(src.files)
    problems += rights.problems
    given = grants(src.files)
    for who in rights.principals:
        got = {g.permission.upper() for g in given if g.grantee.lower() == who.lower()}
        if ENDPOINT not in got:
            problems.append(f"{who} (sqlembed.invoke's principal) is not granted {ENDPOINT}")
        extra = sorted(p for p in got if p != ENDPOINT and not _CREDENTIAL_RIGHT.fullmatch(p))
        if extra:
            problems.append(f"{who} holds more than {ENDPOINT} and REFERENCES on the credential: {extra}")
    return problems


# --- a. rights ---------------------------------------------------------------------------------


def documented_procedures(readme: str) -> set[str]:
    """The public procedures: the first column of sql/README.md's procedure table."""
    section = re.search(r"^## Procedures and the permissions each needs\n(.*?)(?=^## )", readme, re.S | re.M)
    names: set[str] = set()
    for row in re.findall(r"^\|([^|\n]+)\|", section.group(1) if section else "", re.M):
        names |= {n.lower() for n in re.findall(r"`(?:sqlembed\.)?(\w+)", row)}
    return names


def _views_defined(files: tuple[SqlFile, ...]) -> set[str]:
    return {
        m.group(1).lower()
        for f in files
        for m in re.finditer(r"\bCREATE\s+(?:OR\s+ALTER\s+)?VIEW\s+\[?sqlembed\]?\.\[?(\w+)", code_of(f.text), re.I)
    }


@rule("a_grants_follow_the_permission_model")
def grants_follow_the_permission_model(src: Sources) -> list[str]:
    public = documented_procedures(src.readme)
    privileged = {p.lower() for p in invoke_rights(src.files).principals}
    sqlembed_views = _views_defined(src.files)
    problems = []
    for g in grants(src.files):
        perm, who = g.permission.upper(), g.grantee.lower()
        where = f"{g.file}: GRANT {g.permission} TO {g.grantee}"
        if who in privileged:
            continue  # exactly what it holds: rule b
        if re.search(r"EXTERNAL\s+ENDPOINT|DATABASE\s+SCOPED\s+CREDENTIAL", perm):
            problems.append(f"{where}: only the principal sqlembed.invoke runs as may call out or use the credential")
        elif who != "sqlembed_user":
            problems.append(f"{where}: sqlembed grants to sqlembed_user and sqlembed.invoke's principal only")
        elif re.fullmatch(r"EXECUTE ON EXTERNAL MODEL::\S+", perm):
            continue
        elif m := re.fullmatch(r"EXECUTE ON (?:OBJECT::)?SQLEMBED\.(\w+)", perm):
            if m.group(1).lower() not in public:
                problems.append(f"{where}: not a public procedure (sql/README.md's procedure table)")
        elif m := re.fullmatch(r"SELECT ON (?:OBJECT::)?SQLEMBED\.(\w+)", perm):
            if m.group(1).lower() not in sqlembed_views:
                problems.append(f"{where}: no right on sqlembed's tables (they hold every caller's keys and jobs)")
        else:
            problems.append(f"{where}: sqlembed_user gets EXECUTE on the public procedures and the external model only")
    if not any(g.grantee.lower() == "sqlembed_user" for g in grants(src.files)):
        problems.append("no GRANT to sqlembed_user found: the rule would pass vacuously")
    return problems


# --- c. read-only procedures never doom a caller's transaction ---------------------------------


@rule("c_read_only_procedures_run_with_xact_abort_off")
def read_only_xact_abort_off(src: Sources) -> list[str]:
    problems = []
    for p in read_only(src.files):
        body = p.body.upper()
        if not re.search(r"\bSET\s+XACT_ABORT\s+OFF\b", body) or re.search(r"\bSET\s+XACT_ABORT\s+ON\b", body):
            problems.append(f"sqlembed.{p.name} writes nothing, so it runs with SET XACT_ABORT OFF (only)")
    return problems


# --- d. no INSERT ... EXEC ----------------------------------------------------------------------

_INSERT_EXEC = re.compile(rf"\bINSERT\s+(?:INTO\s+)?{NAME}\s*(?:\([^)]*\))?\s*EXEC(?:UTE)?\b", re.I)


@rule("d_no_insert_exec")
def no_insert_exec(src: Sources) -> list[str]:
    codes = [(f.name, v.code) for f in src.files for v in views(f.text)]
    codes += [("db/targets/mssql.py", code_of(s)) for s in python_sql(src.mssql_py)]
    return [
        f"{name}: {' '.join(m.group(0).split())!r}: INSERT ... EXEC fails (Msg 8164) when a caller nests it in its "
        "own INSERT ... EXEC; insert inside the dynamic batch instead"
        for name, code in codes
        for m in _INSERT_EXEC.finditer(code)
    ]


# --- e. the state key contains the destination --------------------------------------------------

_DESTINATION = re.compile(r"(?<![\w])(?:[@:]|\w+\.)?(?:destination|dst|dest)\b", re.I)


def _state_keys(v: View) -> list[str]:
    """The state keys a view computes (as written): HASHBYTES over parts joined by NCHAR(0), the
    sync state's key (source table and sync target) aside."""
    return [
        v.text[at : at + len(args)]
        for at, args in hashes(v.code)
        if re.search(r"NCHAR\s*\(\s*0\s*\)", args, re.I) and "sync_key" not in v.code[max(0, at - 60) : at].lower()
    ]


@rule("e_the_state_key_contains_the_destination")
def state_key_has_destination(src: Sources) -> list[str]:
    problems = []
    migrations = [f for f in src.files if f.kind == "migration"]
    definitions = []
    for f in migrations:
        code = code_of(f.text)
        for m in re.finditer(r"\bkey_hash\s+AS\b", code, re.I):
            table = re.findall(r"\bCREATE\s+TABLE\s+(\S+)", code[: m.start()], re.I)
            if table and table[-1].lower().startswith("sqlembed.embedding_state"):
                persisted = code.upper().find("PERSISTED", m.end())
                definitions.append((f.name, code[m.end() : persisted]))
    if not definitions:
        problems.append("no migration defines sqlembed.embedding_state's key_hash")
    else:
        name, expr = definitions[-1]
        missing = [c for c in ("source_table", "destination", "row_key") if not re.search(rf"\b{c}\b", expr, re.I)]
        if missing:
            problems.append(f"{name}: the last definition of embedding_state.key_hash leaves out {missing}")
    column = re.compile(r"\bdestination\s+n?varchar", re.I)
    if not any("destination" in f.name and column.search(f.text) for f in migrations):
        problems.append("no migration named like NNN_state_destination.sql adds the destination column")
    objects = [(f.name, k) for f in src.files if f.kind == "object" for v in views(f.text) for k in _state_keys(v)]
    python = [("db/targets/mssql.py", k) for s in python_sql(src.mssql_py) for k in _state_keys(View(s, code_of(s)))]
    for where, keys in (("sql/objects", objects), ("db/targets/mssql.py", python)):
        if not keys:
            problems.append(f"{where} computes no state key (HASHBYTES over NCHAR(0)-joined parts)")
    for name, key in objects + python:
        if not _DESTINATION.search(key):
            problems.append(f"{name}: a state key without the destination: {' '.join(key.split())}")
    return problems


# --- f. nothing outside the database changes inside a caller's transaction ---------------------

OUTSIDE_CHANGES = ("submit_job", "cancel_job")


@rule("f_service_changes_refuse_a_callers_transaction")
def service_changes_refuse_a_callers_transaction(src: Sources) -> list[str]:
    procs = procedures(src.files)
    problems = []
    for name in OUTSIDE_CHANGES:
        p = procs.get(name)
        if p is None:
            problems.append(f"no sqlembed.{name}")
            continue
        body = p.body
        # Whatever it runs may call the service (sqlembed.log_error aside).
        calls = [m.start() for m in CALL.finditer(body) if m.group(1).lower() != "log_error"]
        first_call = min(calls + [m.start() for m in _CALLS_OUT.finditer(body)], default=len(body))
        refused = refusal(body)
        if refused is None or refused.start() > first_call:
            problems.append(
                f"sqlembed.{name} changes a job on the service, which a caller's ROLLBACK cannot undo: it refuses "
                "inside a transaction (@@TRANCOUNT at entry > 0: return 409) before it calls the service"
            )
    status = procs.get("job_status")
    if status is None:
        problems.append("no sqlembed.job_status")
    elif writes(status, procs) or opens_transactions(status):
        problems.append(f"sqlembed.job_status writes {writes(status, procs)}: a status query writes nothing")
    return problems


# --- the rules on sql/ -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_holds(name: str) -> None:
    problems = RULES[name](current())
    assert not problems, "\n".join(problems)


def test_the_rules_see_what_they_check() -> None:
    """Guards against passing vacuously: the procedures, GRANTs and readers the rules read exist."""
    src = current()
    assert {"embed_text", "search", "self_test"} <= documented_procedures(src.readme)
    assert {"embed_text", "search"} <= {p.name for p in read_only(src.files)}
    assert "invoke" in procedures(src.files)


# --- each rule fails on a small bad snippet ---------------------------------------------------

README = """## Procedures and the permissions each needs

| procedure | what |
|---|---|
| `sqlembed.embed_text @text` | one text |
| `sqlembed.submit_job`, `job_status`, `cancel_job` | jobs |

## Next
"""

GOOD_INVOKE = """
CREATE USER sqlembed_invoker WITHOUT LOGIN;
GO
CREATE OR ALTER PROCEDURE sqlembed.invoke
    @path nvarchar(200), @error nvarchar(max) = NULL OUTPUT
WITH EXECUTE AS 'sqlembed_invoker'
AS
BEGIN
    SET XACT_ABORT OFF;
    DECLARE @rc int, @response nvarchar(max);
    EXEC @rc = sys.sp_invoke_external_rest_endpoint @url = @path, @response = @response OUTPUT;
    RETURN @rc;
END;
GO
"""
GOOD_GRANTS = """
GRANT EXECUTE ON OBJECT::sqlembed.embed_text TO sqlembed_user;
GRANT EXECUTE ANY EXTERNAL ENDPOINT TO sqlembed_invoker;
GO
"""


def sql(name: str, text: str, kind: Kind = "object") -> SqlFile:
    return SqlFile(kind, Path("fixture") / name, textwrap.dedent(text))


def sources(*files: SqlFile, mssql_py: str = "") -> Sources:
    return Sources(tuple(files), mssql_py, README)


def test_fixture_baseline_passes_rules_a_and_b() -> None:
    good = sources(sql("040_invoke.sql", GOOD_INVOKE), sql("900_grants.sql", GOOD_GRANTS))
    assert grants_follow_the_permission_model(good) == []
    assert invoke_alone_calls_out(good) == []


@pytest.mark.parametrize(
    "grant",
    [
        "GRANT EXECUTE ANY EXTERNAL ENDPOINT TO sqlembed_user;",
        "GRANT SELECT ON OBJECT::sqlembed.jobs TO sqlembed_user;",
        "GRANT EXECUTE ON OBJECT::sqlembed.invoke TO sqlembed_user;",
        "GRANT EXECUTE ON SCHEMA::sqlembed TO sqlembed_user;",
        "GRANT EXECUTE ON OBJECT::sqlembed.embed_text TO public;",
        # Built as dynamic SQL, by REPLACE or by concatenation.
        "SET @sql = REPLACE(N'GRANT REFERENCES ON DATABASE SCOPED CREDENTIAL::{c} TO sqlembed_user;', N'{c}', @c);",
        "SET @sql = N'GRANT EXECUTE ANY EXTERNAL ' + N'ENDPOINT TO ' + N'app_role;';",
    ],
)
def test_rule_a_refuses(grant: str) -> None:
    bad = sources(sql("040_invoke.sql", GOOD_INVOKE), sql("900_grants.sql", GOOD_GRANTS + grant + "\nGO\n"))
    assert grants_follow_the_permission_model(bad)


def test_rule_a_reads_code_not_comments() -> None:
    commented = "-- GRANT EXECUTE ANY EXTERNAL ENDPOINT TO sqlembed_user;\nPRINT N'GRANT it to the caller.';\nGO\n"
    ok = sources(sql("040_invoke.sql", GOOD_INVOKE), sql("900_grants.sql", GOOD_GRANTS + commented))
    assert grants_follow_the_permission_model(ok) == []


@pytest.mark.parametrize(
    ("invoke", "grants_sql"),
    [
        # No fixed principal at all (today's committed form).
        (GOOD_INVOKE.replace("WITH EXECUTE AS 'sqlembed_invoker'\n", ""), GOOD_GRANTS),
        # The impersonated user holds more than the two rights.
        (GOOD_INVOKE, GOOD_GRANTS + "GRANT SELECT ON OBJECT::sqlembed.jobs TO sqlembed_invoker;\nGO\n"),
        # ... or lacks the endpoint right.
        (GOOD_INVOKE, GOOD_GRANTS.replace("GRANT EXECUTE ANY EXTERNAL ENDPOINT TO sqlembed_invoker;", "")),
        # A user with a login (or none created).
        (GOOD_INVOKE.replace("WITHOUT LOGIN", "FOR LOGIN app"), GOOD_GRANTS),
        # Signed, but before the CREATE OR ALTER that drops the signature.
        (
            "CREATE CERTIFICATE c WITH SUBJECT = 'x';\nADD SIGNATURE TO sqlembed.invoke BY CERTIFICATE c;\n"
            "ALTER CERTIFICATE c REMOVE PRIVATE KEY;\nCREATE USER s FROM CERTIFICATE c;\nGO\n"
            + GOOD_INVOKE.replace("WITH EXECUTE AS 'sqlembed_invoker'\n", ""),
            GOOD_GRANTS.replace("sqlembed_invoker", "s"),
        ),
        # Another procedure calls the endpoint itself (in dynamic SQL, too).
        (
            GOOD_INVOKE + "CREATE OR ALTER PROCEDURE sqlembed.other AS\nBEGIN\n"
            "    EXEC sys.sp_executesql N'EXEC sys.sp_invoke_external_rest_endpoint @url = N''https://x'';';\nEND;\nGO\n",
            GOOD_GRANTS,
        ),
    ],
)
def test_rule_b_refuses(invoke: str, grants_sql: str) -> None:
    assert invoke_alone_calls_out(sources(sql("040_invoke.sql", invoke), sql("900_grants.sql", grants_sql)))


def test_rule_b_accepts_a_signature_after_the_procedure_or_execute_as_owner() -> None:
    plain = GOOD_INVOKE.replace("WITH EXECUTE AS 'sqlembed_invoker'\n", "")
    signing = """
        DECLARE @sql nvarchar(max) = N'ADD SIGNATURE TO sqlembed.invoke BY CERTIFICATE sqlembed_invoke '
            + N'WITH PASSWORD = ''x'';';
        EXEC sys.sp_executesql @sql;
        IF DATABASE_PRINCIPAL_ID(N'sqlembed_invoke_signer') IS NULL
            CREATE USER sqlembed_invoke_signer FROM CERTIFICATE sqlembed_invoke;
        ALTER CERTIFICATE sqlembed_invoke REMOVE PRIVATE KEY;
        GRANT EXECUTE ANY EXTERNAL ENDPOINT TO sqlembed_invoke_signer;
        GO
    """
    signed = sources(sql("040_invoke.sql", plain), sql("045_sign.sql", signing), sql("900_grants.sql", GOOD_GRANTS))
    assert invoke_rights(signed.files).principals == {"sqlembed_invoke_signer"}
    # sqlembed_invoker is no longer the invoke principal: its endpoint right is now refused (rule a).
    assert invoke_alone_calls_out(signed) == []
    assert grants_follow_the_permission_model(signed)
    kept_key = sources(sql("040_invoke.sql", plain), sql("045_sign.sql", signing.replace("REMOVE PRIVATE KEY", "")))
    assert any("private key" in p for p in invoke_alone_calls_out(kept_key))
    owner = sources(sql("040_invoke.sql", GOOD_INVOKE.replace("'sqlembed_invoker'", "OWNER")))
    assert invoke_rights(owner.files).form == "owner"


READ_ONLY_PROC = """
CREATE OR ALTER PROCEDURE sqlembed.embed_text @error nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    {xact}
    DECLARE @t TABLE (a int);
    INSERT INTO @t (a) VALUES (1);
    CREATE TABLE #x (a int);
    DELETE FROM #x WHERE a = 1;
    EXEC sqlembed.log_error @source = N'x', @code = 1, @message = N'm';
    RETURN 0;
END;
GO
"""


@pytest.mark.parametrize("xact", ["", "SET XACT_ABORT ON;", "-- SET XACT_ABORT OFF;"])
def test_rule_c_refuses(xact: str) -> None:
    assert read_only_xact_abort_off(sources(sql("050_embed_text.sql", READ_ONLY_PROC.format(xact=xact))))


def test_rule_c_accepts_xact_abort_off_and_ignores_temporary_tables() -> None:
    ok = sources(sql("050_embed_text.sql", READ_ONLY_PROC.format(xact="SET XACT_ABORT OFF;")))
    assert read_only_xact_abort_off(ok) == []
    assert [p.name for p in read_only(ok.files)] == ["embed_text"]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO #hits (id, d) EXEC sys.sp_executesql @sql;",
        "INSERT #hits EXECUTE sqlembed.search @query = N'q';",
        "SET @sql = N'INSERT INTO #h (a) EXEC (@inner);';",
    ],
)
def test_rule_d_refuses(statement: str) -> None:
    assert no_insert_exec(sources(sql("080_search.sql", statement + "\nGO\n")))


def test_rule_d_refuses_it_in_the_bulk_writer_too() -> None:
    assert no_insert_exec(sources(mssql_py='SQL = "INSERT INTO #t (a) EXEC sys.sp_executesql :q"\n'))
    assert no_insert_exec(sources(mssql_py='def f():\n    """INSERT INTO #t (a) EXEC x"""\n')) == []


STATE_MIGRATION = """
CREATE TABLE sqlembed.embedding_state_v3 (
    source_table nvarchar(600) NOT NULL,
    destination  nvarchar(800) NOT NULL,
    row_key      nvarchar(4000) NOT NULL,
    key_hash     AS CAST(HASHBYTES('SHA2_256', CAST(source_table AS nvarchar(max)) + NCHAR(0) + destination
                                   + NCHAR(0) + row_key) AS binary(32)) PERSISTED NOT NULL
);
GO
"""
STATE_OBJECT = """
MERGE sqlembed.embedding_state WITH (HOLDLOCK) AS s USING #x AS x
    ON s.key_hash = HASHBYTES('SHA2_256', CAST(@src AS nvarchar(max)) + NCHAR(0) + @destination + NCHAR(0) + x.k)
WHEN NOT MATCHED THEN INSERT (source_table) VALUES (@src);
GO
"""
STATE_PY = """STATE_KEY = "HASHBYTES('SHA2_256', CAST(:src AS nvarchar(max)) + NCHAR(0) + :dst + NCHAR(0) + {col})"\n"""


def _state(migration: str = STATE_MIGRATION, obj: str = STATE_OBJECT, py: str = STATE_PY) -> Sources:
    return sources(
        sql("050_state_destination.sql", migration, "migration"), sql("060_embed_rows.sql", obj), mssql_py=py
    )


def test_rule_e_accepts_the_destination_everywhere() -> None:
    assert state_key_has_destination(_state()) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"migration": STATE_MIGRATION.replace("+ NCHAR(0) + destination", "")},
        {"obj": STATE_OBJECT.replace("+ @destination + NCHAR(0)", "")},
        # In a dynamic-SQL template, too.
        {"obj": "SET @scan = N'SELECT HASHBYTES(''SHA2_256'', @src + NCHAR(0) + CAST(t.{k} AS nvarchar(9)))';\nGO\n"},
        {"py": STATE_PY.replace(":dst + NCHAR(0) + ", "")},
        # Mentioned in a comment or a docstring only: not code.
        {"obj": "-- HASHBYTES('SHA2_256', @src + NCHAR(0) + @destination)\nGO\n"},
        {"py": '"""HASHBYTES(\'SHA2_256\', :src + NCHAR(0) + :dst)"""\n'},
    ],
)
def test_rule_e_refuses(bad: dict[str, str]) -> None:
    assert state_key_has_destination(_state(**bad))


SUBMIT = """
CREATE OR ALTER PROCEDURE sqlembed.{name} @error nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET XACT_ABORT ON;
    DECLARE @entry_trancount int = @@TRANCOUNT, @rc int;
    {refusal}
    EXEC @rc = sqlembed.invoke @path = N'/v1/jobs', @error = @error OUTPUT;
    {late}
    RETURN @rc;
END;
GO
"""
REFUSE = """IF @entry_trancount > 0
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.x', 'code': 409, 'message': 'inside a transaction');
        RETURN 409;
    END;"""
STATUS = """
CREATE OR ALTER PROCEDURE sqlembed.job_status @error nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET XACT_ABORT OFF;
    DECLARE @rc int;
    EXEC @rc = sqlembed.invoke @path = N'/v1/jobs/1', @error = @error OUTPUT;
    {write}
    RETURN @rc;
END;
GO
"""


def _jobs(submit: str = REFUSE, submit_late: str = "", cancel: str = REFUSE, status_write: str = "") -> Sources:
    text = (
        GOOD_INVOKE
        + SUBMIT.format(name="submit_job", refusal=submit, late=submit_late)
        + SUBMIT.format(name="cancel_job", refusal=cancel, late="")
        + STATUS.format(write=status_write)
    )
    return sources(sql("070_jobs.sql", text))


def test_rule_f_accepts_a_refusal_before_the_call() -> None:
    assert service_changes_refuse_a_callers_transaction(_jobs()) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"submit": ""},
        {"cancel": "IF @entry_trancount > 0 SET @rc = 400;"},
        {"submit": "", "submit_late": REFUSE},  # refuses only after the job was submitted
        {"status_write": "UPDATE sqlembed.jobs SET state = N'x' WHERE job_id = N'1';"},
        {"status_write": "DELETE FROM sqlembed.jobs WHERE job_id = N'1';"},
        {"status_write": "EXEC sys.sp_executesql N'INSERT INTO sqlembed.jobs (job_id) VALUES (N''1'');';"},
    ],
)
def test_rule_f_refuses(bad: dict[str, str]) -> None:
    assert service_changes_refuse_a_callers_transaction(_jobs(**bad))
