"""Routing decision time on agent traffic: long conversations resent whole with every turn.

Run: PYTHONPATH=src python3 benchmarks/agent_prompts.py [--sessions 8] [--turns 40]
(``MODELMIX_ROUTING_DATA`` overrides where the shared routing data is; default
``../shared/data/routing`` from the repository root.)

Each simulated session is what a coding agent sends: a system prompt (``--system-kb`` of the
ZeroEval prompts' text, from the shared data), then per turn a user message and a tool result
(1-4 KB each), the whole conversation every time. Sessions are interleaved turn by turn, as
concurrent agents would be.
The decision (request facts, ``needs_of``, the route's first pick) is timed per turn, with the
long prompts derived chunk by chunk (``modelmix.prompt_chunks``) and, for comparison, with the
whole text derived again every turn (the code before it). Prints one table.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson

from modelmix import tokens
from modelmix.prompt_chunks import LONG_TEXT, _recent_chunks
from modelmix.routing.learned import features, strategy
from modelmix.routing.learned.artifact import load_artifact
from modelmix.routing.learned.strategy import LearnedStrategy
from modelmix.routing.needs import needs_of
from modelmix.types import ChatRequest

DATA = Path(
    os.environ.get(
        "MODELMIX_ROUTING_DATA",
        Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "routing",
    )
)


@functools.cache
def corpus() -> str:
    """The text messages are cut from: every ZeroEval prompt, in file order."""
    lines = (DATA / "zeroeval-dev.jsonl").read_text().splitlines()
    return "\n".join(str(orjson.loads(line)["prompt"]) for line in lines if line.strip())


@contextlib.contextmanager
def whole_texts() -> Iterator[None]:
    """Every text derived whole, as before ``prompt_chunks`` (its threshold out of reach)."""
    mods = (tokens, features, strategy)
    saved = [m.LONG_TEXT for m in mods]
    for m in mods:
        m.LONG_TEXT = 1 << 60  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for m, v in zip(mods, saved, strict=True):
            m.LONG_TEXT = v  # type: ignore[attr-defined]


def sessions(n: int, turns: int, system_kb: int, seed: int) -> list[list[list[dict[str, str]]]]:
    """Per session, per turn, the messages sent (each turn extends the one before)."""
    docs = corpus()
    rng = random.Random(seed)

    def piece(kb: float) -> str:
        start = rng.randrange(0, len(docs) - int(kb * 1024))
        return docs[start : start + int(kb * 1024)]

    out = []
    for _ in range(n):
        msgs = [{"role": "system", "content": piece(system_kb)}]
        convo = []
        for t in range(turns):
            msgs = [
                *msgs,
                {"role": "user", "content": f"Turn {t}: " + piece(rng.uniform(0.2, 1.0))},
                {"role": "tool", "content": piece(rng.uniform(1.0, 4.0))},
            ]
            convo.append(msgs)
        out.append(convo)
    return out


def run(route: LearnedStrategy, convos: list[list[list[dict[str, str]]]]) -> list[float]:
    """Decision times (ms), every turn of every session, from cold memos."""
    features._CHUNKS.clear()
    tokens._CHUNK_TOKENS.clear()
    times = []
    for t in range(len(convos[0])):
        for convo in convos:  # sessions interleaved
            req = ChatRequest(model="r", messages=convo[t])
            t0 = time.perf_counter()
            next(route.plan(req, needs_of(req), {}))
            times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--turns", type=int, default=40)
    p.add_argument("--system-kb", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    art = load_artifact("default")
    routes = {
        "learned, 24 models": LearnedStrategy("r", art.models, art, quality_target=0.95),
        "learned, profiles": LearnedStrategy(
            "r", art.models, art, quality_target=0.95, profiles=art.meta["model_quality"]
        ),
    }
    convos = sessions(a.sessions, a.turns, a.system_kb, a.seed)
    last = ChatRequest(model="r", messages=convos[0][-1]).facts.text
    print(
        f"{a.sessions} interleaved sessions x {a.turns} turns; prompts grow from "
        f"{len(ChatRequest(model='r', messages=convos[0][0]).facts.text) / 1024:.0f} KB to "
        f"{len(last) / 1024:.0f} KB ({tokens.count_tokens(last)} tokens)"
    )
    head = ("p50 ms", "p99 ms", "max ms", "total s")
    print(f"{'route':20s} {'derived':12s} " + " ".join(f"{h:>8s}" for h in head))
    for name, route in routes.items():
        for how in ("chunked", "whole text"):
            with whole_texts() if how == "whole text" else contextlib.nullcontext():
                ms = np.array(run(route, convos))
            if how == "chunked":
                kept = len(features._CHUNKS)
            print(
                f"{name:20s} {how:12s} {np.percentile(ms, 50):8.3f} {np.percentile(ms, 99):8.3f}"
                f" {ms.max():8.3f} {ms.sum() / 1000:8.2f}"
            )
    print(f"feature chunks memoised after a chunked run: {kept} (capacity 4096)")
    print(f"resident memory of both memos, full: {memo_memory():.1f} MiB")


def memo_memory() -> float:
    """MiB held (``tracemalloc``, numpy arrays included) once distinct long texts have filled
    both chunk memos; the texts themselves are let go."""
    features._CHUNKS.clear()
    tokens._CHUNK_TOKENS.clear()
    docs = corpus()
    tokens.count_tokens(docs[:LONG_TEXT])  # the tokenizer's own tables load before
    tracemalloc.start()
    n = 0
    while len(features._CHUNKS) < features._CHUNKS.capacity:
        start = (n * 7919) % (len(docs) - 60_000)
        text = "".join(f"{n} {line}\n" for line in docs[start : start + 60_000].split("\n"))
        features.featurize(text)
        tokens.count_tokens(text)
        n += 1
    del text
    _recent_chunks.cache_clear()  # (it holds the last texts, not the memos' chunks)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held / 2**20


if __name__ == "__main__":
    main()
