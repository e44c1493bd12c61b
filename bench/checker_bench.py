"""Linearizability checker speed and memory, side by side with Porcupine on its own histories.

Checks every file in ../shared/peer-histories/porcupine and prints, per file:
operations, our verdict, the expected one, our check time (parsing excluded
and the median of 3 runs after a warm-up, as in Porcupine's figures),
Porcupine's time from porcupine-timings.tsv and our peak memory; then
totals and the ratio. Then it builds a seeded synthetic
`kv` history (100,000 ops on 1,000 keys from 20 processes, some `info`) and
checks that. Each file runs in its own subprocess so its peak RSS
(ru_maxrss) is its own; the interpreter's baseline is printed for reference.

Usage: python bench/checker_bench.py [--time-limit 60] [--in-process] [--synthetic-ops 100000]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from checkers.linearizability import check  # noqa: E402
from checkers.models import StringKV, get_model  # noqa: E402
from history.formats.porcupine import read_porcupine_etcd, read_porcupine_kv  # noqa: E402
from history.operation import END_OF_TIME, Operation  # noqa: E402

PEER_DIR = ROOT.parent / "shared" / "peer-histories" / "porcupine"
MIB = 1024  # ru_maxrss is in KiB on Linux
RUNS = 3


def synthetic_kv_history(n_ops: int, n_keys: int, n_procs: int, seed: int) -> list[Operation]:
    """A linearizable `kv` history from a seeded random schedule: reads, writes, cas; ~1% info.

    Each op takes effect at one instant between its invoke and its completion
    (on a sequential register per key), so the history is linearizable.
    """
    rng = random.Random(seed)
    state: dict[int, int | None] = {}
    # process -> [index, f, value, key, call, applied?, took?, output]
    pending: dict[int, list] = {}
    procs = list(range(n_procs))
    next_proc = n_procs
    ops: list[Operation] = []
    issued = 0
    clock = 0
    while issued < n_ops or pending:
        clock += 1
        slot = rng.randrange(n_procs)
        p = procs[slot]
        o = pending.get(p)
        if o is None:
            if issued >= n_ops:
                continue
            key = rng.randrange(n_keys)
            f = rng.choice(("read", "read", "write", "cas"))
            value = rng.randrange(5) if f == "write" else [rng.randrange(5), rng.randrange(5)]
            pending[p] = [issued, f, None if f == "read" else value, key, clock, False, False, None]
            issued += 1
        elif not o[5]:
            cur = state.get(o[3])
            if o[1] == "read":
                o[7], o[6] = cur, True
            elif o[1] == "write":
                state[o[3]], o[6] = o[2], True
            else:
                o[6] = cur == o[2][0]
                if o[6]:
                    state[o[3]] = o[2][1]
            o[5] = True
        else:
            del pending[p]
            if rng.random() < 0.01:
                ops.append(Operation(o[0], p, o[1], o[2], None, o[4], END_OF_TIME, "info", o[3]))
                procs[slot] = next_proc  # after info the worker continues as a new process
                next_proc += 1
            else:
                status = "ok" if o[6] else "fail"
                ops.append(Operation(o[0], p, o[1], o[2], o[7], o[4], clock, status, o[3]))
    ops.sort(key=lambda op: op.index)
    return ops


class WholeStringKV(StringKV):
    """Porcupine's kvNoPartitionModel: every key in one state, no partitioning.

    Here only to show the search itself (Porcupine cannot check c10 this way
    in under 2.4 s); it is a model defined outside checkers/, touching nothing
    in the search. The state is a sorted tuple of (key, string) pairs.
    """

    name = "string-kv-whole"

    def init(self):
        return ()

    def partition(self, ops):
        return {None: list(ops)}

    def transition(self, op):
        one_key, key = super().transition(op), op.key

        def step(state):
            strings = dict(state)
            after = one_key(strings.get(key, ""))
            if not after:
                return ()
            strings[key] = after[0]
            return (tuple(sorted(strings.items())),)

        return step

    def reachable(self, op):
        holds, key = super().reachable(op), op.key
        return None if holds is None else (lambda state: holds(dict(state).get(key, "")))

    def reset_allows(self, reset, read):
        return reset.key == read.key and super().reset_allows(reset, read)

    def effect_key(self, op):
        return (op.key, *super().effect_key(op))


def _load(rel: str):
    path = PEER_DIR / rel
    if rel.startswith("jepsen/"):
        return read_porcupine_etcd(path), get_model("etcd")
    return read_porcupine_kv(path), get_model("string-kv")


def measure_file(rel: str, time_limit: float) -> dict:
    """Check one peer file here; time excludes parsing."""
    ops, model = _load(rel)
    # Like Porcupine's figures: one warm-up, then the median of three timed runs.
    times = []
    for _ in range(1 + RUNS):
        start = time.perf_counter()
        result = check(ops, model, time_limit=time_limit)
        times.append(time.perf_counter() - start)
    elapsed = statistics.median(times[1:])
    return {
        "file": rel,
        "ops": len(ops),
        "valid": result["valid"],
        "evidence": result["evidence"] is not None,
        "seconds": elapsed,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def _run(rel: str, time_limit: float, in_process: bool) -> dict:
    if in_process:
        return measure_file(rel, time_limit)
    out = subprocess.run(
        [sys.executable, __file__, "--worker", rel, "--time-limit", str(time_limit)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def _porcupine_ms() -> dict[str, float]:
    """Porcupine's median check time per file: partitioned kvModel for the kv files."""
    times: dict[str, float] = {}
    for line in (PEER_DIR / "porcupine-timings.tsv").read_text().splitlines():
        row = line.split("\t")
        if line.startswith("#") or len(row) < 5 or row[0] == "file":
            continue
        if row[1] in ("etcdModel", "kvModel(partitioned)"):
            try:
                times[row[0]] = float(row[4])
            except ValueError:
                pass
    return times


def _baseline_rss_kib() -> int:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
            "import checkers.linearizability, history.formats.porcupine, resource; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument(
        "--in-process", action="store_true", help="no subprocess per file (RSS then accumulates)"
    )
    parser.add_argument("--synthetic-ops", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure_file(args.worker, args.time_limit)))
        return 0

    with (PEER_DIR / "manifest.tsv").open(newline="") as handle:
        rows = [
            r
            for r in csv.DictReader(handle, delimiter="\t")
            if r["expected_verdict"] in ("linearizable", "not-linearizable")
        ]
    porcupine = _porcupine_ms()
    print(
        f"{'file':24} {'ops':>5} {'verdict':>8} {'expect':>8} {'ours ms':>9} {'porc ms':>9} {'peak MiB':>9}"
    )
    totals = {"etcd": [0.0, 0.0], "kv": [0.0, 0.0]}
    worst_rss, disagreements, unknown = 0, [], []
    for row in rows:
        r = _run(row["file"], args.time_limit, args.in_process)
        expected = row["expected_verdict"] == "linearizable"
        name = row["file"].split("/", 1)[1]
        theirs = porcupine.get(name, float("nan"))
        group = "etcd" if row["file"].startswith("jepsen/") else "kv"
        totals[group][0] += r["seconds"]
        totals[group][1] += theirs
        worst_rss = max(worst_rss, r["maxrss_kib"])
        if r["valid"] == "unknown":
            unknown.append(name)
        elif r["valid"] is not expected:
            disagreements.append(name)
        print(
            f"{row['file']:24} {r['ops']:>5} {str(r['valid']):>8} {str(expected):>8} "
            f"{r['seconds'] * 1000:>9.2f} {theirs:>9.3f} {r['maxrss_kib'] / MIB:>9.1f}"
        )
    ours = totals["etcd"][0] + totals["kv"][0]
    theirs = totals["etcd"][1] + totals["kv"][1]
    print()
    for group, (o, t) in totals.items():
        print(
            f"total {group:5}: ours {o * 1000:9.1f} ms   porcupine {t:9.1f} ms   ours/porcupine {o * 1000 / t:6.2f}"
        )
    print(
        f"total all  : ours {ours * 1000:9.1f} ms   porcupine {theirs:9.1f} ms   ours/porcupine {ours * 1000 / theirs:6.2f}"
    )
    print(
        f"files: {len(rows)}, disagreements: {disagreements or 'none'}, unknown: {unknown or 'none'}"
    )
    base = _baseline_rss_kib() if not args.in_process else 0
    print(
        f"peak RSS over all files: {worst_rss / MIB:.1f} MiB (interpreter + imports alone: {base / MIB:.1f} MiB)"
    )

    print()
    print("kv files without partitioning (Porcupine's kvNoPartitionModel; its times in brackets):")
    for name, theirs_ms in (
        ("c01-ok", 0.128),
        ("c01-bad", 0.073),
        ("c10-ok", 2386.4),
        ("c10-bad", 2858.3),
        ("c50-bad", None),
    ):
        ops = read_porcupine_kv(PEER_DIR / "kv" / f"{name}.txt")
        start = time.perf_counter()
        result = check(ops, WholeStringKV(), time_limit=args.time_limit)
        elapsed = time.perf_counter() - start
        theirs_text = "unknown after 60 s" if theirs_ms is None else f"{theirs_ms} ms"
        print(
            f"  {name:8} valid={result['valid']!s:6} ours {elapsed * 1000:8.1f} ms  [porcupine {theirs_text}]"
        )

    print()
    start = time.perf_counter()
    ops = synthetic_kv_history(args.synthetic_ops, 1000, 20, args.seed)
    built = time.perf_counter() - start
    start = time.perf_counter()
    result = check(ops, get_model("kv"), time_limit=args.time_limit)
    elapsed = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    info = sum(1 for op in ops if op.status == "info")
    print(
        f"synthetic kv: {len(ops)} ops ({info} info), {len(result['keys']['settled'])} keys settled, "
        f"{len(result['keys']['unknown'])} unknown, valid={result['valid']}: checked in {elapsed:.2f} s "
        f"(built in {built:.2f} s), peak RSS of this process {rss / MIB:.1f} MiB"
    )
    return 0 if not disagreements and not unknown else 1


if __name__ == "__main__":
    sys.exit(main())
