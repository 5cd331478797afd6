"""Reading the packaged T-SQL: files, GO batches, $(VAR) substitution, checksums, one-script render."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from sqlembed.db.variables import SECRET_VARS, sql_literal_safe
from sqlembed.errors import InvalidInput

Kind = Literal["bootstrap", "migration", "object"]
_GO = re.compile(r"^[ \t]*go(?:[ \t]+(\d+))?[ \t]*(?:--.*)?$", re.IGNORECASE)
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Batch:
    text: str
    line: int  # 1-based line of the batch's first line in its file


@dataclass(frozen=True)
class SqlFile:
    kind: Kind
    path: Path
    text: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def number(self) -> int:
        return int(self.path.name[:3])

    @property
    def checksum(self) -> str:
        # Line endings normalized so a checkout on Windows does not look like an edit.
        return hashlib.sha256(self.text.replace("\r\n", "\n").encode("utf-8")).hexdigest()

    def batches(self) -> list[Batch]:
        return split_batches(self.text)


def sql_root() -> Path:
    """The packaged T-SQL (SQLEMBED_SQL_DIR, a setting, replaces it: ``load(settings.sql_dir)``)."""
    return Path(str(resources.files("sqlembed.db") / "sql"))


def load(root: Path | None = None) -> list[SqlFile]:
    """Bootstrap, then migrations, then objects, each in number order."""
    root = root or sql_root()
    files = [SqlFile("bootstrap", root / "000_bootstrap.sql", (root / "000_bootstrap.sql").read_text("utf-8"))]
    for kind, sub in (("migration", "migrations"), ("object", "objects")):
        for p in sorted((root / sub).glob("*.sql")):
            if not _NAME.match(p.name):
                raise InvalidInput(f"{p}: file names are NNN_lower_snake.sql")
            files.append(SqlFile(kind, p, p.read_text("utf-8")))  # type: ignore[arg-type]
    return files


def mask(text: str) -> str:
    """The text with string literals, quoted identifiers and comments blanked (newlines kept).

    Same length and line structure as the input, so positions and line numbers carry over.
    T-SQL block comments nest; '' ]] and "" escape inside their quotes. Raises on an unterminated one.
    """
    out = list(text)
    state = "code"  # code | line | block | string | bracket | dquote
    depth = 0
    i, n = 0, len(text)
    closers = {"string": "'", "bracket": "]", "dquote": '"'}
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if state == "code":
            if c == "-" and nxt == "-":
                state = "line"
            elif c == "/" and nxt == "*":
                state, depth = "block", 1
                out[i] = out[i + 1] = " "
                i += 2
                continue
            elif c in "'[\"":
                state = {"'": "string", "[": "bracket", '"': "dquote"}[c]
                i += 1
                continue  # the opening quote stays visible
            else:
                i += 1
                continue
        if c in "\r\n":
            if state == "line":
                state = "code"
            i += 1
            continue
        if state == "block" and c == "/" and nxt == "*":
            depth += 1
            out[i] = out[i + 1] = " "
            i += 2
            continue
        if state == "block" and c == "*" and nxt == "/":
            depth -= 1
            out[i] = out[i + 1] = " "
            i += 2
            if depth == 0:
                state = "code"
            continue
        if state in closers and c == closers[state]:
            if nxt == c:  # doubled: escaped
                out[i] = out[i + 1] = " "
                i += 2
                continue
            state = "code"
            i += 1
            continue
        out[i] = " "
        i += 1
    if state not in ("code", "line"):
        raise InvalidInput(f"unterminated {state} at end of text")
    return "".join(out)


def split_batches(text: str) -> list[Batch]:
    """Split on GO lines the way sqlcmd does, never inside strings, identifiers or comments.

    ``GO n`` repeats the batch n times. Empty batches are dropped.
    """
    lines = text.splitlines(keepends=True)
    masked = mask(text).splitlines(keepends=True)
    batches: list[Batch] = []
    current: list[str] = []
    start = 1
    for lineno, (line, code) in enumerate(zip(lines, masked, strict=True), start=1):
        m = _GO.match(code.rstrip("\r\n"))
        if m is None:
            current.append(line)
            continue
        body = "".join(current)
        if body.strip():
            batches.extend(Batch(body, start) for _ in range(int(m.group(1) or 1)))
        current, start = [], lineno + 1
    body = "".join(current)
    if body.strip():
        batches.append(Batch(body, start))
    return batches


def variables_used(text: str) -> set[str]:
    return set(_VAR.findall(text))


def substitute(batch: Batch, values: Mapping[str, str], *, where: str, keep: Iterable[str] = ()) -> str:
    """Replace $(VAR)s; names in ``keep`` stay for sqlcmd -v. An unknown name is an error."""
    kept = set(keep)

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in kept:
            return m.group(0)
        if name not in values:
            line = batch.line + batch.text[: m.start()].count("\n")
            raise InvalidInput(f"{where}:{line}: unknown variable $({name})")
        return sql_literal_safe(name, values[name])

    return _VAR.sub(repl, batch.text)


def _exec_literal(sql: str) -> str:
    return "N'" + sql.replace("'", "''") + "'"


def migration_block(f: SqlFile, values: Mapping[str, str], version: str) -> str:
    """One migration as one batch: its GO batches run through sp_executesql inside one transaction
    with its journal row, under an applock, after re-checking the journal. A failure anywhere rolls
    the whole migration back (XACT_ABORT ON), so a rerun starts it again from the top instead of
    meeting half-created objects (Msg 2714). ``db render`` and ``db deploy`` both run this."""
    name = f.name.replace("'", "''")
    steps = "\n".join(f"        EXEC sys.sp_executesql {_exec_literal(substitute(b, values, where=f.name))};"
                      for b in f.batches())
    return (
        "SET XACT_ABORT ON;\n"
        f"IF EXISTS (SELECT 1 FROM sqlembed.migrations WHERE name = N'{name}' AND checksum <> '{f.checksum}')\n"  # nosec B608
        f"    THROW 50000, N'migration {name} was applied with different content; refusing to continue', 1;\n"
        f"IF NOT EXISTS (SELECT 1 FROM sqlembed.migrations WHERE name = N'{name}')\n"  # nosec B608
        "BEGIN\n"
        "    BEGIN TRANSACTION;\n"
        "    DECLARE @lock int;\n"
        "    EXEC @lock = sys.sp_getapplock @Resource = N'sqlembed.migrations', @LockMode = N'Exclusive', "
        "@LockOwner = N'Transaction', @LockTimeout = 60000;\n"
        "    IF @lock < 0\n"
        "        THROW 50001, N'another sqlembed deploy holds the migration lock; try again later', 1;\n"
        f"    IF NOT EXISTS (SELECT 1 FROM sqlembed.migrations WHERE name = N'{name}')\n"  # nosec B608
        "    BEGIN\n"
        f"{steps}\n"
        "        INSERT sqlembed.migrations (name, checksum, sqlembed_version) "
        f"VALUES (N'{name}', '{f.checksum}', N'{version}');\n"
        "    END;\n"
        "    COMMIT TRANSACTION;\n"
        "END;\n"
    )


def render(files: list[SqlFile], values: Mapping[str, str], version: str) -> str:
    """One script for sqlcmd / SSMS (SQLCMD mode): same order and guards as `db deploy`.

    Secrets are never rendered: $(SQLEMBED_API_KEY) stays for ``sqlcmd -v SQLEMBED_API_KEY=...``.
    Each migration is one transactional batch (``migration_block``); objects are idempotent.
    """
    shown = {k: v for k, v in values.items() if k not in SECRET_VARS}
    out = [
        f"-- sqlembed {version}: rendered by `sqlembed db render`. Run with sqlcmd or SSMS in SQLCMD mode:",
        "--   sqlcmd -b -I -S <server> -d <database> -i sqlembed.sql -v SQLEMBED_API_KEY=<key>  (empty: no credential)",
        "-- Variables: " + ", ".join(f"{k}={v}" for k, v in sorted(shown.items())),
        ":on error exit",
        "GO",
    ]
    for f in files:
        out.append(f"-- ==== {f.kind}: {f.name}")
        if f.kind == "migration":
            out.append(migration_block(f, values, version) + "GO")
            continue
        out += [substitute(b, values, where=f.name, keep=SECRET_VARS).rstrip() + "\nGO" for b in f.batches()]
    import json

    out.append("INSERT sqlembed.deployments (sqlembed_version, variables) VALUES (N'"
               + version + "', " + _exec_literal(json.dumps(shown, sort_keys=True)) + ");\nGO")
    return "\n".join(out) + "\n"
