"""Cold-start cost: importing each handler in a fresh interpreter, against `import boto3, requests`.

Each round starts a fresh interpreter per handler that imports `boto3, requests` (the floor) and
then the handler, timing both inside the process; an empty interpreter's start is timed in the
same rounds. A handler's cost is start + floor + its own imports, against start + floor: taken in
one process, both sides see the same machine at the same moment, which a shared machine's noise
otherwise swamps. Wall-clock times of whole processes are printed beside, interleaved, for
reference: they also count the interpreter's exit (tearing down every module it loaded, about
30 ms more for a handler than for the floor here), which a Lambda cold start never pays.

Exits 1 when a handler costs more than BUDGET times the floor: the project's rule is 1.15
(tests/unit/test_architecture.py lists, per handler, the modules importing it adds to that
floor, so that what spends the budget is seen in review).

Both sides import bytecode: the floor's packages were compiled when pip installed them, and the
project's sources are compiled here first. Without that, a shell with PYTHONDONTWRITEBYTECODE
set would time the compiling of every edited module on each run, and the floor's never.
"""

from __future__ import annotations

import argparse
import compileall
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PATHS = [
    ROOT / "layers" / "bridge",
    ROOT / "functions" / "webhook",
    ROOT / "functions" / "resolver",
    ROOT / "functions" / "sessions",
    ROOT / "functions" / "worker",
]
FLOOR = "import boto3, requests"
HANDLERS = ("webhook_handler", "resolver_handler", "sessions_handler", "worker_handler")
BUDGET = 1.15
PRELUDE = f"import sys, time, json; sys.path[:0] = {[str(p) for p in PATHS]!r}\n"
# Times the floor, then the handler, in one fresh interpreter; prints both in seconds.
TIMED = PRELUDE + (
    "t0 = time.perf_counter(); import boto3, requests; t1 = time.perf_counter()\n"
    "import {handler}\n"
    "print(json.dumps([t1 - t0, time.perf_counter() - t1]))\n"
)


def _wall(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", PRELUDE + code], check=True)  # noqa: S603
    return time.perf_counter() - started


def _timed(handler: str) -> tuple[float, float]:
    out = subprocess.run(  # noqa: S603 - this interpreter, our code
        [sys.executable, "-c", TIMED.format(handler=handler)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    floor, own = json.loads(out)
    return float(floor), float(own)


def measure(rounds: int = 21) -> dict[str, Any]:
    """Interleaved rounds; the medians of the interpreter, the floor and each handler, in s."""
    for path in PATHS:
        compileall.compile_dir(path, quiet=1)
    for handler in HANDLERS:
        _timed(handler)  # warm the file cache so the first round is not an outlier
    start: list[float] = []
    wall: dict[str, list[float]] = {"floor": [], **{name: [] for name in HANDLERS}}
    inside: dict[str, list[tuple[float, float]]] = {name: [] for name in HANDLERS}
    for _ in range(rounds):
        start.append(_wall("pass"))
        wall["floor"].append(_wall(FLOOR))
        for handler in HANDLERS:
            inside[handler].append(_timed(handler))
            wall[handler].append(_wall(f"import {handler}"))
    interpreter = statistics.median(start)
    wall_floor = statistics.median(wall["floor"])
    handlers = {}
    for handler in HANDLERS:
        floor = statistics.median(f for f, _ in inside[handler])
        own = statistics.median(o for _, o in inside[handler])
        handlers[handler] = {
            "floor": floor,
            "own": own,
            "ratio": (interpreter + floor + own) / (interpreter + floor),
            "wall_ratio": statistics.median(wall[handler]) / wall_floor,
        }
    return {
        "rounds": rounds,
        "interpreter": interpreter,
        "wall_floor": wall_floor,
        "handlers": handlers,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    result = measure(args.rounds)
    print(f"{'interpreter start':32s} {result['interpreter'] * 1000:7.1f} ms")
    print(f"{'floor (' + FLOOR + ')':32s} {result['wall_floor'] * 1000:7.1f} ms wall")
    for handler, figures in result["handlers"].items():
        print(
            f"{handler:32s} +{figures['own'] * 1000:5.1f} ms on a {figures['floor'] * 1000:5.1f}"
            f" ms floor: {figures['ratio']:5.3f}x (budget {BUDGET}x;"
            f" wall clock {figures['wall_ratio']:4.2f}x)"
        )
    worst = max(figures["ratio"] for figures in result["handlers"].values())
    return 0 if worst <= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
