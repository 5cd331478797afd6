"""Helpers for the static T-SQL checks: the procedures of sql/, their dynamic-SQL templates filled
with sample identifiers, and sqlfluff parsing with the SQL Server 2025 constructs it does not know
replaced by forms it does (those constructs are checked against their documented syntax instead)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from sqlembed import __version__
from sqlembed.db.sqlfiles import SqlFile, load, mask, render, split_batches, substitute
from sqlembed.db.variables import resolve
from sqlembed.errors import InvalidInput

FILES = load()
VALUES = resolve({"SQLEMBED_URL": "https://embed.example.internal:8888", "SQLEMBED_API_KEY": "k"})
FLOAT16 = resolve({"SQLEMBED_URL": "https://embed.example.internal:8888", "SQLEMBED_VECTOR_TYPE": "float16"})

# What each {placeholder} stands for when a template is parsed (the procedures fill them from the
# catalog with QUOTENAME'd names and validated values).
SAMPLE = {
    "src": "[dbo].[docs]",
    "k": "[id]",
    "t": "[body]",
    "v": "[embedding]",
    "filter": " AND (t.[lang] = N'en')",
    "kt": "nvarchar(64)",
    "kc": " COLLATE Latin1_General_BIN2",
    "kcoll": "Latin1_General_BIN2",
    "dims": "384",
    "vt": ", float16",
    "metric": "cosine",
    "name": "[vix_docs_embedding]",
    "model": "[sqlembed]",
    "credential": "[https://embed.example.internal:8888]",
    "settings": "LOCATION = N'https://e/api/embed', API_FORMAT = N'Ollama', MODEL_TYPE = EMBEDDINGS, MODEL = N'm'",
    "url": "N'https://e'",
    "api_format": "N'Ollama'",
    "vector_type": "'float32'",
    "use_credential": "1",
    "external_model": "N'sqlembed'",
    "timeout": "120",
    "retry_count": "10",
    "rest_retry": "1",
    "chunk_table": "[dbo].[docs_chunks]",
    "pk": "[id]",
    "ck": "[chunk_no]",
    "dimensions": "384",
    "parent": "[dbo].[docs]",
    "txt": "[body]",
    "passage": "SUBSTRING(p.[body], r.chunk_offset, r.chunk_length)",
    "join": " LEFT JOIN [dbo].[docs] AS p ON p.[id] = r.id",
    "ranked": "SELECT 1 AS id, 1 AS chunk_no, 1 AS chunk_offset, 1 AS chunk_length, 0.5 AS distance, 1 AS rn",
}

_AGE = re.compile(
    r"AI_GENERATE_EMBEDDINGS\s*\(\s*(.*?)\s+USE\s+MODEL\s+(\w+)(\s+PARAMETERS\s+'[^']*')?\s*\)", re.S | re.I
)
# Learn's grammar for AI_GENERATE_EMBEDDINGS(source USE MODEL model_identifier [PARAMETERS json]) (contract C1).
AGE_SYNTAX = _AGE


@dataclass(frozen=True)
class Procedure:
    name: str
    file: str
    text: str  # the CREATE OR ALTER batch, variables substituted
    code: str  # the same with strings and comments masked

    @property
    def body(self) -> str:
        """The masked body (strings and comments blanked)."""
        return self.code[self.code.upper().index("\nBEGIN") :]

    @property
    def body_text(self) -> str:
        return self.text[self.code.upper().index("\nBEGIN") :]


def procedures(files: Sequence[SqlFile] | None = None) -> dict[str, Procedure]:
    """The procedures of sql/ (or of the given files: the rules also run on fixtures and on HEAD)."""
    return _procedures(tuple(FILES if files is None else files))


@cache
def _procedures(files: tuple[SqlFile, ...]) -> dict[str, Procedure]:
    out = {}
    for f in files:
        for b in f.batches():
            sql = substitute(b, VALUES, where=f.name)
            m = re.match(r"\s*CREATE\s+OR\s+ALTER\s+PROCEDURE\s+sqlembed\.(\w+)", mask(sql), re.I)
            if m:
                out[m.group(1)] = Procedure(m.group(1), f.name, sql, mask(sql))
    return out


_SQL_WORD = re.compile(r"\b(SELECT|UPDATE|INSERT|MERGE|CREATE|ALTER|GRANT|DECLARE|DELETE)\b", re.I)


def literals(text: str) -> list[str]:
    """Every string literal's value, found with the same masker the splitter uses (comments and
    quoted names are not strings, so an apostrophe in a comment cannot shift anything)."""
    masked = mask(text)
    out = []
    for m in re.finditer(r"'([^']*)'", masked):
        # mask keeps the quotes and blanks the content (doubled quotes included), length-preserving.
        out.append(text[m.start(1) : m.end(1)].replace("''", "'"))
    return out


def templates(f: SqlFile) -> list[str]:
    """The dynamic-SQL templates of a file: string literals that hold SQL and {placeholders}."""
    return [lit for lit in literals(f.text) if re.search(r"\{[a-z_]+\}", lit) and _SQL_WORD.search(lit)]


def fill(template: str) -> str:
    def sample(m: re.Match[str]) -> str:
        if m.group(1) not in SAMPLE:
            raise AssertionError(f"placeholder {{{m.group(1)}}} has no sample value in tsql.SAMPLE: add one")
        return SAMPLE[m.group(1)]

    return re.sub(r"\{([a-z_]+)\}", sample, template)


def for_sqlfluff(sql: str) -> str:
    """sqlcmd commands dropped; AI_GENERATE_EMBEDDINGS(x USE MODEL m ...) as a plain call."""
    sql = "\n".join("" if line.lstrip().startswith(":") else line for line in sql.splitlines())
    return _AGE.sub(lambda m: f"AI_GENERATE_EMBEDDINGS({m.group(1)})", sql)


# Constructs sqlfluff's T-SQL dialect does not parse: each is matched against its documented
# syntax (sqlserver-contract.md) instead, and only statements made of one of them may be unparsed.
DOCUMENTED = {
    "CREATE/ALTER EXTERNAL MODEL (B1, B2)": re.compile(
        r"^\s*(CREATE\s+EXTERNAL\s+MODEL\s+\[[^\]]+\]\s+WITH|ALTER\s+EXTERNAL\s+MODEL\s+\[[^\]]+\]\s+SET)\s*\(\s*"
        r"LOCATION\s*=\s*N'[^']*'\s*,\s*API_FORMAT\s*=\s*N'(Ollama|OpenAI|Azure OpenAI)'\s*,"
        r"\s*MODEL_TYPE\s*=\s*EMBEDDINGS"
        r"\s*,\s*MODEL\s*=\s*N'[^']*'(\s*,\s*CREDENTIAL\s*=\s*\[[^\]]+\])?(\s*,\s*PARAMETERS\s*=\s*N'[^']*')?\s*\);\s*$",
        re.S | re.I,
    ),
    # sqlfluff parses the statement but not a bracketed name with an escaped ] (an IPv6 URL's).
    "CREATE/ALTER DATABASE SCOPED CREDENTIAL (A6)": re.compile(
        r"^\s*(CREATE|ALTER)\s+DATABASE\s+SCOPED\s+CREDENTIAL\s+\[(?:[^\]]|\]\])+\]\s+"
        r"WITH\s+IDENTITY\s*=\s*N?'HTTPEndpointHeaders'\s*,\s*SECRET\s*=\s*N?'(?:[^']|'')*'\s*;\s*$",
        re.S | re.I,
    ),
    "CREATE VECTOR INDEX (D4)": re.compile(
        r"^\s*CREATE\s+VECTOR\s+INDEX\s+\[[^\]]+\]\s+ON\s+\[[^\]]+\]\.\[[^\]]+\]\s*\(\s*\[[^\]]+\]\s*\)\s*"
        r"WITH\s*\(\s*METRIC\s*=\s*'(cosine|dot|euclidean)'\s*,\s*TYPE\s*=\s*'DiskANN'\s*\)\s*;\s*$",
        re.S | re.I,
    ),
    # Syntax only: who may receive which right is test_security_rules.py's business.
    "GRANT ON EXTERNAL MODEL / CREDENTIAL (A3, B1)": re.compile(
        r"^\s*GRANT\s+(EXECUTE\s+ON\s+EXTERNAL\s+MODEL|REFERENCES\s+ON\s+DATABASE\s+SCOPED\s+CREDENTIAL)::\[[^\]]+\]"
        r"\s+TO\s+(\w+|\[[^\]]+\])\s*;\s*$",
        re.S | re.I,
    ),
}
VECTOR_SEARCH_EARLIER = re.compile(  # SQL Server 2025 (D5)
    r"FROM\s+VECTOR_SEARCH\(\s*TABLE\s*=\s*\S+\s+AS\s+t\s*,\s*COLUMN\s*=\s*\S+\s*,\s*SIMILAR_TO\s*=\s*@\w+\s*,\s*"
    r"METRIC\s*=\s*'\w+'\s*,\s*TOP_N\s*=\s*@\w+\s*\)\s+AS\s+s\s+ORDER\s+BY\s+s\.distance\s*;",
    re.S | re.I,
)
VECTOR_SEARCH_V3 = re.compile(  # Azure SQL / Fabric version 3 index: no TOP_N, TOP (n) WITH APPROXIMATE
    r"SELECT\s+TOP\s*\(\s*@\w+\s*\)\s+WITH\s+APPROXIMATE\s+.*?FROM\s+VECTOR_SEARCH\(\s*TABLE\s*=\s*\S+\s+AS\s+t\s*,\s*"
    r"COLUMN\s*=\s*\S+\s*,\s*SIMILAR_TO\s*=\s*@\w+\s*,\s*METRIC\s*=\s*'\w+'\s*\)\s+AS\s+s\s+ORDER\s+BY\s+s\.distance"
    r"\s*(;|\)\s*AS\s+\w+\s*;)",  # a statement, or a derived table (search_chunks inserts its hits from one)
    re.S | re.I,
)


def rendered_batches() -> list[str]:
    return [b.text for b in split_batches(render(FILES, VALUES, __version__))]


# --- code views: what the rules read ------------------------------------------------------------
# Rules read code, never prose: comments are blanked, and so are strings, except that a string
# literal holding SQL (a dynamic-SQL template) is itself code and is read as its own view.


@dataclass(frozen=True)
class View:
    text: str  # the source (a file, a batch or one literal's value)
    code: str  # the same, strings and comments blanked (same length: spans carry over)


def code_of(text: str) -> str:
    try:
        return mask(text)
    except InvalidInput:  # a fragment of a concatenation (a literal ending in N'): read it whole
        return text


def views(text: str) -> list[View]:
    """The code of ``text`` and of every string literal in it, each masked on its own."""
    return [View(text, code_of(text))] + [View(lit, code_of(lit)) for lit in literals(text) if lit.strip()]


def uncomment(text: str) -> str:
    """Comments blanked, strings and quoted names kept (same length)."""
    code = code_of(text)
    out = list(code)
    for m in re.finditer(r"'[^']*'|\[[^\]]*\]|\"[^\"]*\"", code):
        out[m.start() : m.end()] = text[m.start() : m.end()]
    return "".join(out)


def flatten(text: str) -> str:
    """Comments dropped and every string literal replaced by its value, a ``+`` next to it swallowed:
    ``N'GRANT x TO ' + N'u;'`` reads ``GRANT x TO u;``, so a statement built in dynamic SQL is read
    like one written out (what the rules look for in it: GRANTs, signatures, users)."""
    code, plain = code_of(text), uncomment(text)
    out, last = [], 0
    for m in re.finditer(r"(\+\s*)?\bN?'[^']*'(\s*\+\s*)?", code):
        quote = code.index("'", m.start())
        end = code.rindex("'", quote, m.end()) + 1
        out += [plain[last : m.start()], text[quote + 1 : end - 1].replace("''", "'")]
        last = m.end()
    return "".join([*out, plain[last:]])


def balanced(code: str, open_at: int) -> int:
    """The index just past the parenthesis that closes the one at ``open_at``."""
    depth = 0
    for i in range(open_at, len(code)):
        depth += {"(": 1, ")": -1}.get(code[i], 0)
        if depth == 0:
            return i + 1
    return len(code)


def body_start(p: Procedure) -> int:
    return p.code.upper().index("\nBEGIN")


# --- writes ------------------------------------------------------------------------------------

NAME = r"(?:\[[^\]]*\]|[#@]?[\w{}]+)(?:\s*\.\s*(?:\[[^\]]*\]|[\w{}]+))*"
# Statements that write a table; the table is group t. An alias (UPDATE b SET ... FROM #x AS b) is
# resolved to its table below.
_WRITE_STATEMENTS = [
    re.compile(p, re.I)
    for p in (
        rf"\bINSERT\s+(?:TOP\s*\([^)]*\)\s*)?(?:INTO\s+)?(?P<t>{NAME})(?:\s+WITH\s*\([^)]*\))?"
        r"\s*(?:\(|SELECT\b|VALUES\b|EXEC|DEFAULT\s+VALUES\b|OUTPUT\b)",
        rf"\bUPDATE\s+(?:TOP\s*\([^)]*\)\s*)?(?P<t>{NAME})(?:\s+WITH\s*\([^)]*\))?\s+SET\b",
        rf"\bDELETE\s+(?:TOP\s*\([^)]*\)\s*)?(?:FROM\s+)?(?P<t>{NAME})"
        r"(?=\s*(?:;|$|\bFROM\b|\bWHERE\b|\bOUTPUT\b|\bAS\b|\bWITH\b|\bOPTION\b))",
        rf"\bMERGE\s+(?:TOP\s*\([^)]*\)\s*)?(?:INTO\s+)?(?P<t>{NAME})",
        rf"\bTRUNCATE\s+TABLE\s+(?P<t>{NAME})",
        rf"\bCREATE\s+TABLE\s+(?P<t>{NAME})\s*\(",
        rf"\bALTER\s+TABLE\s+(?P<t>{NAME})\s+(?:ADD|DROP|ALTER|SET|SWITCH|ENABLE|DISABLE|REBUILD|WITH|NOCHECK|CHECK)\b",
        rf"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<t>{NAME})\s*(?:;|$)",
        rf"\bCREATE\s+(?:UNIQUE\s+)?(?:(?:NON)?CLUSTERED\s+)?(?:VECTOR\s+|COLUMNSTORE\s+)?INDEX\s+{NAME}\s+ON\s+"
        rf"(?P<t>{NAME})",
    )
]


def _target(v: View, m: re.Match[str]) -> str:
    """The table a write statement writes: its alias resolved through the statement's FROM/JOIN."""
    name = v.text[m.start("t") : m.end("t")]
    if re.fullmatch(r"\w+", name):
        end = v.code.find(";", m.end())
        statement = v.code[m.start() : end if end >= 0 else len(v.code)]
        alias = re.search(
            rf"\b(?:FROM|JOIN)\s+(?P<t>{NAME})(?:\s+WITH\s*\([^)]*\))?\s+(?:AS\s+)?{re.escape(name)}\b",
            statement,
            re.I,
        )
        if alias:
            return v.text[m.start() + alias.start("t") : m.start() + alias.end("t")]
    return name


def written_tables(text: str) -> list[str]:
    """The permanent tables the statements of ``text`` (and of the dynamic SQL in its literals)
    write; temporary tables (#x) and table variables (@x) are the caller's own and do not count."""
    out = []
    for v in views(text):
        for rx in _WRITE_STATEMENTS:
            for m in rx.finditer(v.code):
                table = _target(v, m)
                if not table.startswith(("#", "@")):
                    out.append(table)
    return out


CALL = re.compile(r"\bEXEC(?:UTE)?\s+(?:@\w+\s*=\s*)?(?:\[?sqlembed\]?)\.\[?(\w+)\]?", re.I)
# The contract's named exceptions: log_error's one row never makes its caller a writer.
NOT_A_WRITE = {"log_error"}


def writes(p: Procedure, procs: dict[str, Procedure] | None = None, seen: frozenset[str] = frozenset()) -> list[str]:
    """What a procedure writes: its own statements and dynamic SQL, and what the sqlembed
    procedures it runs write (sqlembed.log_error aside)."""
    procs = procedures() if procs is None else procs
    body = p.text[body_start(p) :]
    out = written_tables(body)
    for m in CALL.finditer(code_of(body)):
        callee = m.group(1)
        if callee in procs and callee not in NOT_A_WRITE and callee not in seen and callee != p.name:
            out += [f"{t} (through sqlembed.{callee})" for t in writes(procs[callee], procs, seen | {p.name})]
    return out


# The contract's named exceptions (sql/README.md): they must never doom a caller's transaction.
EXEMPT = {"log_error", "invoke"}


def opens_transactions(p: Procedure) -> bool:
    return bool(re.search(r"\bBEGIN\s+TRAN(SACTION)?\b", p.body, re.I))


def writers(files: Sequence[SqlFile] | None = None) -> list[Procedure]:
    """The procedures the transaction contract binds: every one that writes a permanent table
    (directly, in its dynamic SQL, or through a procedure it runs) or opens a transaction."""
    procs = procedures(files)
    return [p for p in procs.values() if p.name not in EXEMPT and (writes(p, procs) or opens_transactions(p))]


def read_only(files: Sequence[SqlFile] | None = None) -> list[Procedure]:
    """The procedures that write no permanent table (temporary tables, table variables and
    sqlembed.log_error aside) and open no transaction."""
    procs = procedures(files)
    return [p for p in procs.values() if p.name != "log_error" and not writes(p, procs) and not opens_transactions(p)]


def refusal(code: str) -> re.Match[str] | None:
    """``IF @@TRANCOUNT > 0`` (or a variable holding it at entry) leading to a 409: the procedure
    refuses to run inside a caller's transaction."""
    for m in re.finditer(r"\bIF\s+(@@TRANCOUNT|@\w*TRANCOUNT\w*)\s*(>\s*0|<>\s*0|>=\s*1|!=\s*0)\b", code, re.I):
        if re.search(r"\b409\b", code[m.end() : m.end() + 500]):
            return m
    return None


# --- GRANTs, written out or built as dynamic SQL ----------------------------------------------------


@dataclass(frozen=True)
class Grant:
    file: str
    permission: str  # whitespace collapsed, brackets dropped: EXECUTE ON OBJECT::sqlembed.search
    grantee: str


_PRINCIPAL = r"(?:\[[^\]]+\]|[@\w{}]+)"
_GRANT = re.compile(
    rf"(?<![@\w])GRANT\s+(?P<perm>(?:(?!\bTO\b)[^;])+?)\s+TO\s+(?P<who>{_PRINCIPAL}(?:\s*,\s*{_PRINCIPAL})*)"
    r"(?=\s*(?:;|$|\n|\bWITH\b|\bAS\b))",
    re.I,
)


def grants(files: Iterable[SqlFile]) -> list[Grant]:
    """Every GRANT of the files: written out, or built in a string (flattened, see ``flatten``),
    one level of nesting deep."""
    out: dict[Grant, None] = {}
    for f in files:
        for text in [f.text, *literals(f.text)]:
            for m in _GRANT.finditer(flatten(text)):
                perm = re.sub(r"\s+", " ", m.group("perm").replace("[", "").replace("]", "")).strip()
                for who in re.split(r"\s*,\s*", m.group("who")):
                    out[Grant(f.name, perm, who.strip("[]"))] = None
    return list(out)


# --- dynamic SQL rendered from its statements --------------------------------------------------
# A small evaluator of the string expressions T-SQL builds dynamic SQL with (literals, variables,
# +, REPLACE, QUOTENAME, STRING_ESCAPE, CONCAT, CAST, ISNULL/COALESCE, CASE): each variable holds
# every value it can take (a CASE gives each branch), so CREATE and ALTER forms both come out.
# What it cannot evaluate (a catalog query, a parameter) makes that variable unknown.

_TOK = re.compile(r"N?'(?:[^']|'')*'|@@?\w+|\d+|\[(?:[^\]]|\]\])*\]|\w+|<>|>=|<=|!=|\S", re.S)
_MAX_VALUES = 16


class _Unknown(Exception):
    pass


def _json_escape(s: str) -> str:
    """STRING_ESCAPE(s, 'json'): quote, reverse solidus, solidus and control characters."""
    named = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return "".join(named.get(c, f"\\u{ord(c):04x}" if ord(c) < 32 else c) for c in s)


class _Expression:
    def __init__(self, text: str, env: dict[str, list[str] | None]) -> None:
        self.toks = _TOK.findall(text)
        self.i = 0
        self.env = env

    def peek(self) -> str:
        return self.toks[self.i].upper() if self.i < len(self.toks) else ""

    def take(self) -> str:
        if self.i >= len(self.toks):
            raise _Unknown("end of expression")
        self.i += 1
        return self.toks[self.i - 1]

    def expect(self, tok: str) -> None:
        if self.take().upper() != tok:
            raise _Unknown(tok)

    def whole(self) -> list[str]:
        values = self.expr()
        if self.i != len(self.toks):
            raise _Unknown(self.toks[self.i])
        return values

    def expr(self) -> list[str]:
        values = self.term()
        while self.peek() == "+":
            self.i += 1
            right = self.term()
            values = list(dict.fromkeys(a + b for a in values for b in right))[:_MAX_VALUES]
        return values

    def args(self) -> list[list[str]]:
        self.expect("(")
        out = [self.expr()]
        while self.peek() == ",":
            self.i += 1
            out.append(self.expr())
        self.expect(")")
        return out

    def skip_to(self, *stops: str) -> str:
        """Skips a condition (whatever it holds) up to one of ``stops`` at depth 0."""
        depth = 0
        while self.i < len(self.toks):
            tok = self.peek()
            if depth == 0 and tok in stops:
                return tok
            depth += {"(": 1, "CASE": 1, ")": -1, "END": -1}.get(tok, 0)
            self.i += 1
        raise _Unknown("unterminated CASE")

    def case(self) -> list[str]:
        out: list[str] = []
        self.skip_to("WHEN")
        while self.peek() in ("WHEN", "ELSE"):
            if self.take().upper() == "WHEN":
                self.skip_to("THEN")
                self.i += 1
            out += self.expr()
        self.expect("END")
        return list(dict.fromkeys(out))

    def term(self) -> list[str]:
        tok = self.take()
        up = tok.upper()
        if tok.startswith("'") or up.startswith("N'"):
            return [tok[tok.index("'") + 1 : -1].replace("''", "'")]
        if tok.startswith("@"):
            known = self.env.get(tok.lower())
            if known is None:
                raise _Unknown(tok)
            return known
        if tok.isdigit():
            return [tok]
        if tok == "(":
            values = self.expr()
            self.expect(")")
            return values
        if up == "CASE":
            return self.case()
        if up == "CAST":
            self.expect("(")
            values = self.expr()
            self.expect("AS")
            self.skip_to(")")
            self.i += 1
            return values
        if up in _FUNCTIONS and self.peek() == "(":
            args = self.args()
            combos: list[list[str]] = [[]]
            for a in args:
                combos = [[*c, v] for c in combos for v in a][:_MAX_VALUES]
            return list(dict.fromkeys(_FUNCTIONS[up](*c) for c in combos))
        raise _Unknown(tok)


_FUNCTIONS = {
    "REPLACE": lambda s, a, b: s.replace(a, b),
    "QUOTENAME": lambda s, q="[": "[" + s.replace("]", "]]") + "]" if q == "[" else q + s.replace(q, q + q) + q,
    "STRING_ESCAPE": lambda s, _kind: _json_escape(s),
    "CONCAT": lambda *a: "".join(a),
    "ISNULL": lambda a, _b: a,
    "COALESCE": lambda a, *_rest: a,
}


@dataclass(frozen=True)
class Executed:
    variable: str  # what EXEC ran: @sql, or the literal itself
    values: tuple[str, ...] | None  # every statement it can be; None: not evaluated statically


_ASSIGN = re.compile(r"\b(DECLARE|SET)\s+(?=@\w)", re.I)
_EXEC = re.compile(
    r"\bEXEC(?:UTE)?\s+(?:@\w+\s*=\s*)?(?:\[?sys\]?\.)?\[?sp_executesql\]?\s+(?P<a>@\w+|N?'[^']*')"
    r"|\bEXEC(?:UTE)?\s*\(\s*(?P<b>@\w+|N?'[^']*')\s*\)",
    re.I,
)


def _split_top(code: str, sep: str = ",") -> list[tuple[int, int]]:
    """Spans of ``code`` between separators at parenthesis depth 0."""
    spans, depth, start = [], 0, 0
    for i, c in enumerate(code):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if c == sep and depth == 0:
            spans.append((start, i))
            start = i + 1
    return [*spans, (start, len(code))]


def executed_sql(batch: str) -> list[Executed]:
    """What each ``EXEC sys.sp_executesql @x`` / ``EXEC (@x)`` of a batch runs, evaluated from the
    batch's DECLARE and SET statements in order (control flow ignored: every assignment counts)."""
    code, plain = code_of(batch), uncomment(batch)
    events: list[tuple[int, str, str]] = []  # (position, variable or "", expression text)
    for m in _ASSIGN.finditer(code):
        end = code.find(";", m.end())
        end = len(code) if end < 0 else end
        if m.group(1).upper() == "SET":
            a = re.match(r"(@\w+)\s*=(?!=)", code[m.end() : end])
            if a:
                events.append((m.start(), a.group(1).lower(), plain[m.end() + a.end() : end]))
            continue
        for s, e in _split_top(code[m.end() : end]):
            part = code[m.end() + s : m.end() + e]
            name = re.match(r"\s*(@\w+)", part)
            eq = next((i for i, _ in _split_top(part, "=")[1:2]), None)
            if name:
                expr = plain[m.end() + s + eq : m.end() + e] if eq is not None else ""
                events.append((m.start() + s, name.group(1).lower(), expr))
    for m in _EXEC.finditer(code):
        arg = "a" if m.group("a") else "b"
        events.append((m.start(), "", plain[m.start(arg) : m.end(arg)]))
    env: dict[str, list[str] | None] = {}
    out = []
    for _, variable, expr in sorted(events, key=lambda e: e[0]):
        try:
            values: list[str] | None = _Expression(expr, env).whole() if expr.strip() else None
        except _Unknown:
            values = None
        if variable:
            env[variable] = values
        else:
            out.append(Executed(expr.strip(), None if values is None else tuple(values)))
    return out


# --- the Python side: SQL that python/sqlembed/db/targets/mssql.py sends ----------------------


def _fstring_part(v: ast.expr) -> str:
    if isinstance(v, ast.FormattedValue):
        return "{" + ast.unparse(v.value) + "}"
    return v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else ""


def python_sql(source: str) -> list[str]:
    """The string literals of a Python module, docstrings left out; an f-string's fields read as
    ``{expression}`` (as the SQL templates' placeholders do)."""
    tree = ast.parse(source)
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
        if isinstance(node, ast.JoinedStr):
            skip |= {id(v) for v in node.values}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.append("".join(_fstring_part(v) for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            out.append(node.value)
    return out


def hashes(code: str) -> list[tuple[int, str]]:
    """Every HASHBYTES(...) call of a masked view: its position and the call itself."""
    calls = re.finditer(r"\bHASHBYTES\s*\(", code, re.I)
    return [(m.start(), code[m.start() : balanced(code, m.end() - 1)]) for m in calls]


def json_secret(sql: str) -> object:
    """The SECRET of a rendered CREATE/ALTER DATABASE SCOPED CREDENTIAL, decoded as JSON."""
    m = re.search(r"SECRET\s*=\s*N?'((?:[^']|'')*)'", sql, re.I | re.S)
    return json.loads(m.group(1).replace("''", "'")) if m else None
