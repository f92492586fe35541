"""Where modelmix keeps its files.

The gateway's home: ``$MODELMIX_HOME``, else the per-user data directory
(``$XDG_DATA_HOME/modelmix``, by default ``~/.local/share/modelmix``); a config's ``data_dir``
or ``ledger.path`` overrides both. ``modelmix serve`` records the ledger it writes in
``<user data dir>/active-ledger``, so that ``logs``, ``report`` and ``keys`` read that ledger
wherever they are run from (``default_db_path``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = [
    "default_db_path",
    "default_home",
    "mark_active_ledger",
    "modelmix_home",
    "user_data_dir",
]

_ACTIVE = "active-ledger"


def user_data_dir() -> Path:
    """``$XDG_DATA_HOME/modelmix``, else ``~/.local/share/modelmix``."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "modelmix"


def modelmix_home() -> Path:
    home = os.environ.get("MODELMIX_HOME")
    return Path(home).expanduser() if home else user_data_dir()


def default_home() -> Path:
    """Where a config without ``data_dir`` keeps its ledger (used by ``modelmix.config``)."""
    return modelmix_home()


def mark_active_ledger(path: Path) -> None:
    """Remember ``path`` as the ledger the running gateway writes (best effort)."""
    with contextlib.suppress(OSError):
        target = user_data_dir()
        target.mkdir(parents=True, exist_ok=True)
        (target / _ACTIVE).write_text(str(path.resolve()) + "\n", encoding="utf-8")


def default_db_path() -> Path:
    """The ledger the CLI reads without ``--db``/``--config``: ``$MODELMIX_HOME/ledger.db``
    when set, else the one the last ``modelmix serve`` wrote (if it still exists), else the
    per-user data directory's."""
    if os.environ.get("MODELMIX_HOME"):
        return modelmix_home() / "ledger.db"
    with contextlib.suppress(OSError):
        active = Path((user_data_dir() / _ACTIVE).read_text(encoding="utf-8").strip())
        if active.is_file():
            return active
    return user_data_dir() / "ledger.db"
