"""What libfaketime costs a node: a Python loop of time.time() in the base image, without it and under it.

    .venv/bin/python bench/faketime_bench.py [--calls 200000]

Three settings, in one container of the base image: no libfaketime; the
harness's old settings (FAKETIME_NO_CACHE=1: the time file is opened and
parsed on every clock call); the harness's settings now
(harness.cluster.faketime_environment: the file is cached for
FAKETIME_CACHE_S). Prints nanoseconds of CPU per call; asserts nothing.
Needs Docker and the base image (`splitbrain images`).
"""

from __future__ import annotations

import argparse
import json

from harness.cluster import faketime_environment
from harness.images import BaseRecipe, docker_client
from targets.base import ClusterLayout, NodeAddress

LOOP = """
import json, time
n = {calls}
c0 = time.process_time()
for _ in range(n):
    time.time()
print(json.dumps((time.process_time() - c0) / n * 1e9))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    layout = ClusterLayout(nodes=(NodeAddress("n1", "127.0.0.1"),), peer_port=7000, client_port=8000)
    now = faketime_environment(layout)
    settings = {
        "no libfaketime": {},
        "FAKETIME_NO_CACHE=1 (before)": {**{k: v for k, v in now.items() if k != "FAKETIME_CACHE_DURATION"},
                                         "FAKETIME_NO_CACHE": "1"},
        "the harness's settings now": now,
    }
    script = f"mkdir -p $(dirname {layout.faketime_file}) && echo +0 > {layout.faketime_file}\n"
    for env in settings.values():
        prefix = " ".join(f"{k}={v}" for k, v in env.items())
        script += f"{prefix} python3 -c '{LOOP.format(calls=args.calls)}'\n"
    out = docker_client().containers.run(BaseRecipe().tag(), ["sh", "-c", script], remove=True)
    figures = [json.loads(line) for line in out.decode().split()]
    print(f"time.time() in the base image, {args.calls} calls, CPU per call:")
    for name, ns in zip(settings, figures, strict=True):
        print(f"  {name:32s} {ns:9.0f} ns  ({ns / figures[0]:.1f}x)")


if __name__ == "__main__":
    main()
