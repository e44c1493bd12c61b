"""How many operations per second the harness records, against an in-memory target.

The run loop drives 20 clients and a kill nemesis against the fake cluster of
tests/test_run_loop.py, which answers at once, so what is measured is the
harness itself: the workload, the clients, the history writer and the
schedule. Prints figures; asserts nothing (the machine is shared: compare
the CPU share column before reading the rate).

    .venv/bin/python bench/harness_bench.py [--seconds 3] [--clients 20] [--rate 1500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.memory import quick_spec, run_in_memory  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rate", type=int, default=1500, help="target ops/s overall")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'workload':<10} {'ops/s':>8} {'target':>7} {'cpu share':>9} {'schedule lag max':>17}")
    for workload in ("register", "set"):
        spec = quick_spec(workload=workload, concurrency=args.clients, rate=args.rate,
                          time_limit=args.seconds, nemesis=("kill",), nemesis_interval=0.5,
                          warmup=0.1)
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                wall, cpu = time.monotonic(), time.process_time()
                _, _, outcome = run_in_memory(Path(tmp), spec)
                share = (time.process_time() - cpu) / (time.monotonic() - wall)
            rate = sum(outcome.counts["faults"].values()) / spec.time_limit
            print(f"{workload:<10} {rate:>8.0f} {args.rate:>7} {share:>9.2f} "
                  f"{outcome.schedule_lag_max_s:>16.3f}s")


if __name__ == "__main__":
    main()
