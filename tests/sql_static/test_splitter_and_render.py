"""The GO splitter, $(VAR) substitution and `sqlembed db render`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sqlembed.db.sqlfiles import Batch, load, mask, render, split_batches, substitute
from sqlembed.db.variables import resolve
from sqlembed.errors import InvalidInput


@pytest.mark.parametrize(("text", "expected"), [
    ("select 1\nGO\nselect 2\n", ["select 1\n", "select 2\n"]),
    ("select 1\ngo\nselect 2", ["select 1\n", "select 2"]),
    ("select 1\n  GO  -- done\nselect 2\n", ["select 1\n", "select 2\n"]),
    ("select 1\r\nGO\r\nselect 2\r\n", ["select 1\r\n", "select 2\r\n"]),
    ("select 'a\nGO\nb'\nGO\n", ["select 'a\nGO\nb'\n"]),
    ("select 'it''s\nGO\n'\n", ["select 'it''s\nGO\n'\n"]),
    ("/* outer /* inner */\nGO\n*/ select 1\nGO\n", ["/* outer /* inner */\nGO\n*/ select 1\n"]),
    ("select [a\nGO]\nGO\n", ["select [a\nGO]\n"]),
    ('select "a\nGO"\nGO\n', ['select "a\nGO"\n']),
    ("-- GO\nselect 1\nGO\n", ["-- GO\nselect 1\n"]),
    ("select 1 -- it's a comment\nGO\nselect 2\n", ["select 1 -- it's a comment\n", "select 2\n"]),
    ("select 1\nGO 3\n", ["select 1\n"] * 3),
    ("GOTO done\ndone: select 1\nGO\n", ["GOTO done\ndone: select 1\n"]),
    ("\nGO\n\nGO\n", []),
])
def test_split(text: str, expected: list[str]) -> None:
    assert [b.text for b in split_batches(text)] == expected


def test_split_reports_start_lines() -> None:
    assert [b.line for b in split_batches("a\nGO\nb\nc\nGO\nd\n")] == [1, 3, 6]


def test_unterminated_string_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="unterminated string"):
        mask("select 'oops\n")


def test_substitute_escapes_and_reports_unknown() -> None:
    b = Batch("SELECT N'$(A)', $(B)\n-- $(C)\nSELECT $(D)\n", 10)
    assert substitute(b, {"A": "it's", "B": "2", "C": "c", "D": "d"}, where="f.sql") == \
        "SELECT N'it''s', 2\n-- c\nSELECT d\n"
    with pytest.raises(InvalidInput, match=r"f\.sql:12: unknown variable \$\(D\)"):
        substitute(b, {"A": "a", "B": "b", "C": "c"}, where="f.sql")
    assert substitute(b, {"A": "a", "B": "b", "C": "c"}, where="f.sql", keep={"D"}).endswith("SELECT $(D)\n")


def test_render_is_complete_and_keeps_the_secret_out(tmp_path: Path) -> None:
    out = tmp_path / "sqlembed.sql"
    env_key = "render-must-not-see-this"
    proc = subprocess.run(
        [sys.executable, "-m", "sqlembed", "db", "render", "--var", "SQLEMBED_URL=https://embed.example.internal:8888",
         "--var", "SQLEMBED_DIMENSIONS=256", "--out", str(out)],
        capture_output=True, text=True, env={"PATH": "/usr/bin", "SQLEMBED_API_KEY": env_key})
    assert proc.returncode == 0, proc.stderr
    script = out.read_text()
    assert env_key not in script
    for f in load():
        assert f"==== {f.kind}: {f.name}" in script
    assert "$(SQLEMBED_API_KEY)" in script, "left for sqlcmd -v"
    assert not (set(re.findall(r"\$\((\w+)\)", script)) - {"SQLEMBED_API_KEY"}), "everything else substituted"
    assert "VECTOR(256)" in script and "https://embed.example.internal:8888/api/embed" not in script
    assert "N'https://embed.example.internal:8888'" in script
    # Migrations run once, guarded by the journal, and refuse edited content.
    for f in (f for f in load() if f.kind == "migration"):
        assert f"WHERE name = N'{f.name}' AND checksum <> '{f.checksum}'" in script
        assert f"VALUES (N'{f.name}', '{f.checksum}'" in script
    # The rendered script is itself well-formed: it splits cleanly into batches.
    batches = split_batches(script)
    assert len(batches) > 30
    assert batches[0].text.startswith("-- sqlembed")


def test_render_refuses_a_key_on_the_command_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "sqlembed", "db", "render", "--var", "SQLEMBED_URL=https://a",
                           "--var", "SQLEMBED_API_KEY=oops-secret", "--out", "-"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "oops-secret" not in proc.stdout + proc.stderr


def test_render_function_matches_file_order() -> None:
    files = load()
    script = render(files, resolve({"SQLEMBED_URL": "https://a"}), "9.9.9")
    positions = [script.index(f"==== {f.kind}: {f.name}") for f in files]
    assert positions == sorted(positions)
    assert "INSERT sqlembed.deployments (sqlembed_version, variables) VALUES (N'9.9.9'" in script
