"""Send arithmetic questions to a running gateway, the way users would, and rate the answers.

    python3 examples/quality_traffic.py --url http://127.0.0.1:4000 --route smart -n 60 --feedback

Each question is a sum with 1 to 5 operators (seeded, so runs are repeatable); each of 50
simulated users asks in turn (``user``: canaries keep a user on one arm). With ``--feedback``
every answer is rated through ``POST /v1/feedback``: score 1 when its last number is the
right value, else 0 (what a person checking the sum would say). Prints what served the
requests and how often they were right.
"""

from __future__ import annotations

import argparse
import random
import re
from collections import Counter

import openai

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def question(rng: random.Random) -> tuple[str, float]:
    ops = rng.randint(1, 5)
    expr = str(rng.randint(2, 40))
    for _ in range(ops):
        expr += f" {rng.choice('+-*')} {rng.randint(2, 12)}"
    return f"What is {expr}?", float(eval(expr))  # noqa: S307 - our own digits and operators


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:4000")
    parser.add_argument("--route", default="smart")
    parser.add_argument("-n", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--key", default="unused-without-keys")
    parser.add_argument("--feedback", action="store_true", help="Rate every answer.")
    args = parser.parse_args()
    client = openai.OpenAI(base_url=args.url + "/v1", api_key=args.key, max_retries=0)
    rng = random.Random(args.seed)
    served: Counter[str] = Counter()
    right = 0
    for i in range(args.n):
        prompt, value = question(rng)
        raw = client.chat.completions.with_raw_response.create(
            model=args.route, messages=[{"role": "user", "content": prompt}], user=f"user-{i % 50}"
        )
        answer = raw.parse().choices[0].message.content or ""
        numbers = NUMBER.findall(answer)
        ok = bool(numbers) and abs(float(numbers[-1]) - value) < 1e-6
        right += ok
        served[raw.headers.get("x-modelmix-model", "?")] += 1
        if args.feedback:
            client.post(
                "/feedback",
                body={"request_id": raw.headers["x-modelmix-request-id"], "score": float(ok)},
                cast_to=object,
            )
    mix = ", ".join(f"{m} {n}" for m, n in sorted(served.items()))
    print(f"{args.n} requests to {args.route}: {right} right ({right / args.n:.0%}); served by {mix}")


if __name__ == "__main__":
    main()
