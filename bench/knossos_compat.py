"""Knossos's own cas-register test data through `splitbrain check --format edn`: does every file get Knossos's verdict?

Knossos (https://github.com/jepsen-io/knossos, Eclipse Public License 1.0)
keeps histories it must find linearizable under data/cas-register/good and
ones it must not under data/cas-register/bad, all checked against
`(cas-register 0)`. Its data is not copied into this repository (EPL wants its
full text beside every copy); this script reads it from a checkout, or from a
bare git directory (`git show`, no work tree needed), and runs the CLI
in-process on each file, timing it.

Usage:
  python bench/knossos_compat.py KNOSSOS_CHECKOUT_OR_GIT_DIR [--time-limit 60] [--model cas-register]

Prints one row per file (expected, ours, agree, ops, seconds) and a total;
exits 1 if any file disagrees.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.cli import main as splitbrain  # noqa: E402

EXPECTED = {"good": 0, "bad": 1}  # splitbrain's exit codes: 0 linearizable, 1 not


def knossos_files(source: str, under: str, missing: list[str]) -> list[tuple[str, str, bytes]]:
    """(verdict folder, name, bytes) for every .edn under `under` of a checkout or bare git dir."""
    base = Path(source)
    out = []
    if (base / under).is_dir():
        for verdict in EXPECTED:
            for p in sorted((base / under / verdict).glob("*.edn")):
                out.append((verdict, p.name, p.read_bytes()))
        return out
    git = ["git", f"--git-dir={source}"]
    names = subprocess.run(git + ["ls-tree", "-r", "--name-only", "HEAD", under], check=True,
                           capture_output=True, text=True).stdout.split()
    for name in names:
        parts = name.split("/")
        if name.endswith(".edn") and len(parts) >= 3 and parts[-2] in EXPECTED:
            shown = subprocess.run(git + ["show", f"HEAD:{name}"], capture_output=True)
            if shown.returncode != 0:
                # A snapshot may list a large file whose blob it does not hold.
                missing.append(name)
                continue
            out.append((parts[-2], parts[-1], shown.stdout))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("knossos", help="a knossos checkout, or its git directory")
    ap.add_argument("--under", default="data/cas-register")
    ap.add_argument("--model", default="cas-register")
    ap.add_argument("--initial", default="0")
    ap.add_argument("--time-limit", default="60")
    args = ap.parse_args()
    missing: list[str] = []
    files = knossos_files(args.knossos, args.under, missing)
    for name in missing:
        print(f"not checked: {name} is listed but its content is not in this copy")
    if not files:
        print(f"no .edn files under {args.under}/good or /bad in {args.knossos}", file=sys.stderr)
        return 2
    agree = 0
    times = []
    print(f"{'file':<48} {'expect':>6} {'ours':>6} {'agree':>5} {'seconds':>8}")
    with tempfile.TemporaryDirectory(prefix="knossos-") as tmp:
        for verdict, name, data in files:
            path = os.path.join(tmp, f"{verdict}-{name}")
            Path(path).write_bytes(data)
            out, err = io.StringIO(), io.StringIO()
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = splitbrain(["check", path, "--format", "edn", "--model", args.model,
                                   "--initial", args.initial, "--time-limit", args.time_limit])
            elapsed = time.perf_counter() - t0
            times.append(elapsed)
            ok = code == EXPECTED[verdict]
            agree += ok
            shown = {0: "valid", 1: "caught", 2: "error", 3: "unknown"}.get(code, str(code))
            print(f"{verdict + '/' + name:<48} {('valid' if verdict == 'good' else 'caught'):>6} {shown:>6} "
                  f"{'yes' if ok else 'NO':>5} {elapsed:8.3f}")
            if not ok:
                why = (err.getvalue() or out.getvalue()).strip().splitlines()
                print(f"    {why[0] if why else ''}")
    times.sort()
    print(f"\n{agree} of {len(files)} files agree with Knossos "
          f"({sum(v == 'good' for v, _, _ in files)} good, {sum(v == 'bad' for v, _, _ in files)} bad); "
          f"seconds per file: median {times[len(times) // 2]:.3f}, max {times[-1]:.3f}, total {sum(times):.1f}")
    return 0 if agree == len(files) else 1


if __name__ == "__main__":
    sys.exit(main())
