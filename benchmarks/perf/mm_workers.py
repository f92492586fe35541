"""modelmix under N worker processes sharing one port (the multi-worker mode).

Two ways, each worker building its own ``Gateway`` (own upstream pool, own ledger writer
thread; the SQLite ledger in WAL mode is shared by all of them):

* ``--mode reuseport`` (default): N independent processes, each binding the port with
  ``SO_REUSEPORT`` and serving it with ``uvicorn.Server(...).serve(sockets=[sock])``; the kernel
  spreads connections across them by hash, so keep-alive connections end up balanced.
* ``--mode uvicorn``: uvicorn's own ``workers=N`` (one socket bound by the parent and inherited;
  the app as an import string + ``factory=True``). Measured here, the worker that wakes first
  accepts most keep-alive connections (one at 100% CPU, the other at 30%), so it scales badly
  under a fixed set of client connections.

    python3 benchmarks/perf/mm_workers.py --config modelmix.yaml --port 4000 --workers 2
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from starlette.applications import Starlette

CONFIG_ENV = "MODELMIX_BENCH_CONFIG"


def app_from_env() -> Starlette:
    """uvicorn factory: one app per worker process."""
    from modelmix.config import load_config
    from modelmix.gateway import Gateway
    from modelmix.server.app import create_app

    return create_app(Gateway(load_config(os.environ[CONFIG_ENV])))


def serve_reuseport(config: str, host: str, port: int) -> None:
    """One worker: bind with SO_REUSEPORT and serve until SIGINT/SIGTERM."""
    import uvicorn

    os.environ[CONFIG_ENV] = config
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    cfg = uvicorn.Config(app_from_env(), log_level="warning", access_log=False)
    uvicorn.Server(cfg).run(sockets=[sock])  # sets up uvloop like uvicorn.run


def run_reuseport(config: str, host: str, port: int, workers: int) -> None:
    argv = [sys.executable, __file__, "--config", config, "--host", host, "--port", str(port)]
    procs = [subprocess.Popen([*argv, "--single"]) for _ in range(workers)]

    def forward(signum: int, frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for p in procs:
        p.wait()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", choices=("reuseport", "uvicorn"), default="reuseport")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = str(Path(args.config).resolve())
    if args.single:
        serve_reuseport(config, args.host, args.port)
        return
    if args.mode == "reuseport":
        run_reuseport(config, args.host, args.port, args.workers)
        return
    os.environ[CONFIG_ENV] = config
    uvicorn.run(
        "mm_workers:app_from_env",
        factory=True,
        app_dir=str(Path(__file__).parent),
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
