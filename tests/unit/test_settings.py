from __future__ import annotations

from pathlib import Path

import pytest

from sqlembed.settings import Settings


def test_env_prefix_and_lists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SQLEMBED_API_KEYS", " k1, k2 ,,")
    monkeypatch.setenv("SQLEMBED_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("SQLEMBED_STRICT_MODEL", "true")
    monkeypatch.setenv("SQLEMBED_MAX_BODY_BYTES", "2048")
    s = Settings()
    assert s.api_key_list() == ["k1", "k2"]
    assert s.model_dir == tmp_path
    assert s.strict_model is True
    assert s.max_body_bytes == 2048
    assert "k1" not in repr(s), "secrets must not appear in reprs or logs"


def test_defaults_follow_contract() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.port == 8888
    assert s.max_body_bytes == 100 * 1024 * 1024  # contract A7
    assert "all-minilm" in s.alias_list()


def test_invalid_values_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLEMBED_PRECISION", "fp8")
    with pytest.raises(ValueError):
        Settings()


def test_the_readme_configuration_table_is_generated_from_the_settings() -> None:
    import re

    from sqlembed.settings import markdown_table

    readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
    block = re.search(r"<!-- settings:begin -->\n(.*?)<!-- settings:end -->", readme, re.S)
    assert block, "README.md holds the generated table between settings markers"
    assert block.group(1) == markdown_table(), "regenerate it: python -m sqlembed.settings"
    documented = set(re.findall(r"\| `SQLEMBED_(\w+)` \|", block.group(1)))
    assert documented == {n.upper() for n in Settings.model_fields}, "every setting, and only settings"
    assert all(f.description for f in Settings.model_fields.values()), "every setting says what it is for"


def test_every_setting_is_read_somewhere() -> None:
    """A setting that nothing reads is a lie in the table (LOG_LEVEL was one). Read means an
    attribute of a settings object (``settings.x``, ``s.x``, ``svc.settings.x``, ``self.x`` inside
    Settings): ``u.host`` on a URL is not a read of SQLEMBED_HOST."""
    import ast

    root = Path(__file__).parents[2] / "python" / "sqlembed"

    def holder(node: ast.expr) -> bool:
        return (isinstance(node, ast.Name) and node.id in ("settings", "s")) or (
            isinstance(node, ast.Attribute) and node.attr == "settings")

    read: set[str] = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and (holder(node.value) or (
                    path.name == "settings.py" and isinstance(node.value, ast.Name) and node.value.id == "self")):
                read.add(node.attr)
    unread = [n for n in Settings.model_fields if n not in read]
    assert not unread, unread
