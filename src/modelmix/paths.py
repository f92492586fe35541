"""Where modelmix keeps its files: ``$MODELMIX_HOME``, else ``./.modelmix``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_db_path", "default_home", "modelmix_home"]


def modelmix_home() -> Path:
    home = os.environ.get("MODELMIX_HOME")
    return Path(home).expanduser() if home else Path(".modelmix")


def default_db_path() -> Path:
    """The ledger (and virtual keys) database: ``<home>/ledger.db``."""
    return modelmix_home() / "ledger.db"


def default_home() -> Path:
    """Alias of ``modelmix_home`` (used by ``modelmix.config``)."""
    return modelmix_home()
