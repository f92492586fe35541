"""``python -m modelmix.simulated --port 9999``: run the simulated upstream standalone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from modelmix.simulated.app import start_simulator


async def _serve(host: str, port: int) -> None:
    simulator = await start_simulator(host, port)
    print(f"modelmix simulated upstream on {simulator.url}", flush=True)
    for kind in ("openai", "anthropic", "gemini"):
        print(f"  {kind:<9} {simulator.base_url(kind)}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m modelmix.simulated",
        description="Fake OpenAI, Anthropic and Gemini APIs (behaviour chosen by model name).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument(
        "--no-uvloop", action="store_true", help="use the default asyncio event loop"
    )
    args = parser.parse_args(argv)
    run = asyncio.run
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            run = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
