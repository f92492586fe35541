"""What budgets and rate limits cost per request: admission (before the call) plus settlement
(after it), measured on a started gateway, without the upstream call.

    python3 benchmarks/budgets_overhead.py [--n 20000]

Prints one row per setting: microseconds per request for admit + settle, and for the exact
prompt-token count that budgets and token limits need (included in the first figure).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import timeit
from pathlib import Path
from typing import Any

from modelmix.budgets.reservation import count_prompt_tokens
from modelmix.config import parse_config
from modelmix.gateway import Gateway
from modelmix.tokens import count_tokens
from modelmix.types import ChatRequest

BUDGETS = {
    "global": [{"kind": "hard", "period": "month", "limit_usd": 1000}],
    "teams": {"t": [{"kind": "soft", "period": "day", "limit_usd": 100}]},
}
SETTINGS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("no budget, no limit (virtual key)", {}, {}),
    ("key rpm limit only", {}, {"rate_limit": {"rpm": 10**8}}),
    ("key rpm + tpm limits", {}, {"rate_limit": {"rpm": 10**8, "tpm": 10**12}}),
    ("global + team budgets, memory store", {**BUDGETS, "store": "memory"}, {}),
    ("global + team budgets, shared store", BUDGETS, {}),
    (
        "budgets + key budget + rpm/tpm, shared",
        BUDGETS,
        {
            "rate_limit": {"rpm": 10**8, "tpm": 10**12},
            "budgets": [{"kind": "hard", "period": "day", "limit_usd": 1000}],
        },
    ),
]


async def measure(
    tmp: Path, i: int, budgets: dict[str, Any], key: dict[str, Any], n: int
) -> tuple[float, float]:
    config = parse_config(
        {
            "models": [
                {
                    "name": "m",
                    "provider": "openai",
                    "base_url": "http://127.0.0.1:9/v1",
                    "price": {"input": 1, "output": 2},
                }
            ],
            "routes": [{"name": "auto", "models": ["m"]}],
            "ledger": {"path": str(tmp / f"l{i}.db")},
            "budgets": budgets,
        }
    )
    gw = Gateway(config, env={})
    await gw.start()
    try:
        assert gw.keys is not None
        info, plaintext = gw.keys.create("k", team="t", tags=["x"], **key)
        gw.keys.verify(plaintext)
        messages = [{"role": "user", "content": "What is the capital of France? " * 5}]

        def fresh() -> ChatRequest:  # a new request each time: derived facts are per request
            return ChatRequest(model="auto", messages=messages, metadata={"feature": "faq"})

        def one() -> None:
            request = fresh()
            record = gw.new_record("openai", request, key_id=info.id)
            gw.admit(request, record, info.id)
            gw.accounting.on_record(record)

        def baseline() -> None:
            gw.new_record("openai", fresh(), key_id=info.id)

        for _ in range(1000):
            one()
        total = min(timeit.repeat(one, number=n, repeat=3)) / n
        base = min(timeit.repeat(baseline, number=n, repeat=3)) / n
        tokens = min(timeit.repeat(lambda: count_prompt_tokens(fresh()), number=n, repeat=3)) / n
        return (total - base) * 1e6, tokens * 1e6
    finally:
        await gw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    count_tokens("warm up")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, budgets, key) in enumerate(SETTINGS):
            us, tok = asyncio.run(measure(Path(tmp), i, budgets, key, args.n))
            rows.append((name, us, tok))
    print(f"{'setting':<42} {'admit+settle µs':>16} {'of which token count µs':>24}")
    print("-" * 84)
    for name, us, tok in rows:
        counted = "rpm" not in name or "tpm" in name
        print(f"{name:<42} {us:>16.1f} {tok if counted and 'no budget' not in name else 0:>24.1f}")
    print("\n(prompt: 150 characters, one message; token count = exact cl100k count of it)")


if __name__ == "__main__":
    main()
