"""Where the ledger lives (``modelmix.paths``): per-user data dir by default, ``$MODELMIX_HOME``
and ``data_dir`` overrides, and the running gateway's ledger found by the CLI from anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmix.config import parse_config
from modelmix.paths import default_db_path, mark_active_ledger, user_data_dir


def test_per_user_data_dir_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MODELMIX_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert user_data_dir() == tmp_path / "xdg" / "modelmix"
    assert parse_config({}).ledger_path == tmp_path / "xdg" / "modelmix" / "ledger.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_data_dir() == tmp_path / "home" / ".local" / "share" / "modelmix"


def test_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("MODELMIX_HOME", str(tmp_path / "home"))
    assert parse_config({}).ledger_path == tmp_path / "home" / "ledger.db"
    assert default_db_path() == tmp_path / "home" / "ledger.db"
    data_dir = parse_config({"data_dir": str(tmp_path / "d")})
    assert data_dir.ledger_path == tmp_path / "d" / "ledger.db"


def test_the_cli_reads_the_ledger_serve_last_wrote(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MODELMIX_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_db_path() == tmp_path / "xdg" / "modelmix" / "ledger.db"
    elsewhere = tmp_path / "project" / ".modelmix" / "ledger.db"
    mark_active_ledger(elsewhere)
    assert default_db_path() == tmp_path / "xdg" / "modelmix" / "ledger.db"  # not there yet
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_bytes(b"")
    assert default_db_path() == elsewhere
