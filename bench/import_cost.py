"""Cold-start cost: importing each handler in a fresh interpreter, against `import boto3, requests`.

Reports medians and the ratio to the floor measured in the same run, interleaved so that a
noisy neighbour slows both alike. Exits 1 when a handler costs more than BUDGET times the floor:
the project's rule is 1.15 (tests/unit/test_architecture.py lists, per handler, the modules
importing it adds to that floor, so that what spends the budget is seen in review).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = [
    ROOT / "layers" / "bridge",
    ROOT / "functions" / "webhook",
    ROOT / "functions" / "resolver",
    ROOT / "functions" / "sessions",
]
FLOOR = "import boto3, requests"
HANDLERS = {
    "webhook_handler": "import webhook_handler",
    "resolver_handler": "import resolver_handler",
    "sessions_handler": "import sessions_handler",
}
BUDGET = 1.15


def _once(code: str) -> float:
    prelude = f"import sys; sys.path[:0] = {[str(p) for p in PATHS]!r}; "
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", prelude + code], check=True)  # noqa: S603
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    timings: dict[str, list[float]] = {"floor": [], **{name: [] for name in HANDLERS}}
    for code in (FLOOR, *HANDLERS.values()):
        _once(code)  # warm the file cache so the first round is not an outlier
    for _ in range(args.rounds):
        timings["floor"].append(_once(FLOOR))
        for name, code in HANDLERS.items():
            timings[name].append(_once(code))
    floor = statistics.median(timings["floor"])
    print(f"{'floor (' + FLOOR + ')':40s} {floor * 1000:7.1f} ms")
    worst = 0.0
    for name in HANDLERS:
        median = statistics.median(timings[name])
        ratio = median / floor
        worst = max(worst, ratio)
        print(f"{name:40s} {median * 1000:7.1f} ms  {ratio:5.2f}x floor (budget {BUDGET}x)")
    return 0 if worst <= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
