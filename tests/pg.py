"""A throwaway PostgreSQL server for the tests, from the distribution's binaries.

``PgServer.start()`` runs ``initdb`` into a temporary directory and ``pg_ctl start`` on a free
loopback port (as the ``postgres`` user when the tests run as root: ``initdb`` refuses root).
Each test gets its own database (``new_database``). The binaries are found through
``$MODELMIX_PG_BIN``, ``pg_config --bindir``, ``/usr/lib/postgresql/<version>/bin`` or
``PATH``. If the server cannot start, the tests that need it FAIL (never skip): ``.ci/run``
installs the ``postgresql`` package first.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

__all__ = ["PgServer", "find_bindir"]


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``; raises if PostgreSQL is missing."""
    candidates: list[str] = []
    if os.environ.get("MODELMIX_PG_BIN"):
        candidates.append(os.environ["MODELMIX_PG_BIN"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package "
        "(apt-get install -y postgresql) or set MODELMIX_PG_BIN"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster in a temporary directory, stopped and removed by ``stop``."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="modelmix-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        self.started = False

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
        return out

    def start(self) -> PgServer:
        if self.user is not None:
            shutil.chown(self.root, self.user, self.user)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        opts = (
            f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        )
        self.started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            try:
                self._run(
                    str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"
                )
            finally:
                self.started = False
        shutil.rmtree(self.root, ignore_errors=True)
