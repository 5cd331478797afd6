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
