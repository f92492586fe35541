"""Profile modelmix (features-on config) under saturation with py-spy; print the top functions.

    pip install py-spy
    python3 benchmarks/perf/profile.py [--seconds 10] [--stream] [--config FILE]
    python3 benchmarks/perf/profile.py --target mm-dist --stream   # PostgreSQL + Redis, budget

Starts the mock (core 0) and ``modelmix serve`` (core 1), drives it with the load generator at
saturation (core 0) while ``py-spy record`` samples the server, then prints the functions with
the most samples (``--gil``: only the thread holding the GIL is sampled, so the figures are
Python CPU time, not threads blocked in a queue), by self time (where the CPU is) and
inclusive (what it is doing).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import Bench  # noqa: E402


def top(collapsed: Path, n: int) -> str:
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        total += count
        frames = [f for f in stack.split(";") if f]
        # py-spy: "function (file.py:line)"; strip line numbers to aggregate per function
        names = [f.rsplit(":", 1)[0] + ")" if ":" in f else f for f in frames]
        if names:
            self_c[names[-1]] += count
        for name in set(names):
            incl[name] += count
    out = [f"{total} samples"]
    out.append(f"\ntop {n} by self time:")
    out += [f"  {c / total:6.1%}  {name}" for name, c in self_c.most_common(n)]
    out.append(f"\ntop {n} by inclusive time (modelmix, starlette, uvicorn frames):")
    inc = [
        (k, v) for k, v in incl.items() if any(m in k for m in ("modelmix", "starlette", "uvicorn"))
    ]
    inc.sort(key=lambda kv: -kv[1])
    out += [f"  {c / total:6.1%}  {name}" for name, c in inc[:n]]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--config", default=str(HERE / "configs" / "features.yaml"))
    p.add_argument("--model", default="auto")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--raw", default=None, help="keep py-spy's collapsed stacks in this file")
    p.add_argument(
        "--target",
        default="mm-feat",
        choices=["mm-feat", "mm-feat-budget", "mm-dist", "mm-cache"],
        help="which of run.py's modelmix targets to profile",
    )
    a = p.parse_args()
    if not shutil.which("py-spy"):
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    ns = argparse.Namespace(
        keep=False,
        mock_delay=0.0,
        chunks=8,
        no_litellm=True,
        features_config=a.config,
        features_model=a.model,
        concurrency=a.concurrency,
        warmup=1.0,
        no_dist=a.target not in ("mm-dist", "mm-feat-budget"),
        dist_no_budget=False,
    )
    b = Bench(ns)
    try:
        b.setup()
        t = next(t for t in b.targets if t.name == a.target)
        assert t.proc is not None
        b.load(t, concurrency=8, stream=a.stream, duration=1.0)
        raw = Path(a.raw) if a.raw else b.work / "profile.txt"
        cmd = [
            "py-spy",
            "record",
            "--pid",
            str(t.proc.pid),
            "--duration",
            str(int(a.seconds)),
            "--rate",
            "250",
            "--gil",
            "--format",
            "raw",
            "--output",
            str(raw),
        ]
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        result: dict[str, object] = {}
        loader = threading.Thread(
            target=lambda: result.update(
                b.load(t, concurrency=a.concurrency, stream=a.stream, duration=a.seconds + 1)
            )
        )
        loader.start()
        _, err = spy.communicate()
        loader.join()
        if spy.returncode != 0 or not raw.exists():
            print(f"py-spy failed: {err.decode(errors='replace')}", file=sys.stderr)
            return 1
        print(
            f"{a.target} ({Path(a.config).name}, {'stream' if a.stream else 'JSON'}, "
            f"c={a.concurrency}): {result['rps']:.0f} rps under py-spy"
        )
        print(top(raw, a.top))
    finally:
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
