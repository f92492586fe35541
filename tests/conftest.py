"""Session-wide test set-up: the per-user data directory (``modelmix.paths``) points at a
temporary directory, so no test reads or writes the real ``~/.local/share/modelmix``."""

from __future__ import annotations

import os
import tempfile

os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="modelmix-test-data-")
