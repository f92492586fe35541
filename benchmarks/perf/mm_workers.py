"""modelmix under N uvicorn worker processes sharing one port (the multi-worker mode).

uvicorn's own multi-process mode: the parent binds the port once, spawns N workers that inherit
the socket (the kernel spreads connections across them) and restarts a worker that dies. It needs
the app as an import string, so the config path travels in an environment variable and each
worker builds its own ``Gateway`` (own upstream pool, own ledger writer thread; the SQLite
ledger in WAL mode is shared by all of them).

    python3 benchmarks/perf/mm_workers.py --config modelmix.yaml --port 4000 --workers 2
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from starlette.applications import Starlette

CONFIG_ENV = "MODELMIX_BENCH_CONFIG"


def app_from_env() -> Starlette:
    """uvicorn factory: one app per worker process."""
    from modelmix.config import load_config
    from modelmix.gateway import Gateway
    from modelmix.server.app import create_app

    return create_app(Gateway(load_config(os.environ[CONFIG_ENV])))


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ[CONFIG_ENV] = str(Path(args.config).resolve())
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
