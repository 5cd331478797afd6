"""Helpers for the static T-SQL checks: the procedures of sql/, their dynamic-SQL templates filled
with sample identifiers, and sqlfluff parsing with the SQL Server 2025 constructs it does not know
replaced by forms it does (those constructs are checked against their documented syntax instead)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from sqlembed import __version__
from sqlembed.db.sqlfiles import SqlFile, load, mask, render, split_batches, substitute
from sqlembed.db.variables import resolve

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


@cache
def procedures() -> dict[str, Procedure]:
    out = {}
    for f in FILES:
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
    return re.sub(r"\{([a-z_]+)\}", lambda m: SAMPLE[m.group(1)], template)


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
    "CREATE VECTOR INDEX (D4)": re.compile(
        r"^\s*CREATE\s+VECTOR\s+INDEX\s+\[[^\]]+\]\s+ON\s+\[[^\]]+\]\.\[[^\]]+\]\s*\(\s*\[[^\]]+\]\s*\)\s*"
        r"WITH\s*\(\s*METRIC\s*=\s*'(cosine|dot|euclidean)'\s*,\s*TYPE\s*=\s*'DiskANN'\s*\)\s*;\s*$",
        re.S | re.I,
    ),
    "GRANT ON EXTERNAL MODEL / CREDENTIAL (A3, B1)": re.compile(
        r"^\s*GRANT\s+(EXECUTE\s+ON\s+EXTERNAL\s+MODEL|REFERENCES\s+ON\s+DATABASE\s+SCOPED\s+CREDENTIAL)::\[[^\]]+\]"
        r"\s+TO\s+sqlembed_user\s*;\s*$",
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
    r"COLUMN\s*=\s*\S+\s*,\s*SIMILAR_TO\s*=\s*@\w+\s*,\s*METRIC\s*=\s*'\w+'\s*\)\s+AS\s+s\s+ORDER\s+BY\s+s\.distance\s*;",
    re.S | re.I,
)


def rendered_batches() -> list[str]:
    return [b.text for b in split_batches(render(FILES, VALUES, __version__))]
