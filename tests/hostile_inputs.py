"""A generator of hostile inputs for the splitbrain CLI, and a runner that measures each case.

Categories: garbage bytes, deep nesting, huge and non-finite numbers (JSON,
EDN, Porcupine, YAML, --initial), odd YAML (billion laughs in every field,
cycles, `!!python` tags, unhashable keys, non-UTF-8, absurd values), odd paths
(FIFOs, /dev/zero, folders, sparse files, dangling symlinks, stdin) and
malformed run folders for `report`. Each case says what a correct answer is:
`refuse` (exit 2 and exactly one line on stderr), `tolerate` (that, or exit
0), or a verdict (exit 0 or 1).

Every case must end with: no traceback, no "internal error" (a bug), within
10 s, peak memory under 500 MB. `tests/test_hostile_inputs.py` runs them all
in-process (peak by tracemalloc, a SIGALRM deadline) and the FIFO, device and
size cases in subprocesses (peak RSS by getrusage). As a script it prints the
figures for every case, each in its own subprocess:

    python tests/hostile_inputs.py [--filter WORD]

`run --spec` cases never start a run: the runner replaces
harness.commands.run.execute with a stub that records that the spec was
accepted, which for these specs is itself a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 10.0
MEMORY_MB = 500.0

REFUSE = "refuse"
# Either answer is right: exit 0 (the input was usable after all, e.g. a
# report rendered from odd but harmless results) or a one-line refusal.
TOLERATE = "tolerate"


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    expect: str | int  # REFUSE, or the exit code of the right verdict
    subprocess: bool = False  # run in a child (hangs, devices, memory are the point)
    stdin: str | None = None  # a file for the child's standard input


@dataclass
class Outcome:
    case: Case
    code: int | None
    stderr: str
    seconds: float
    peak_mb: float
    accepted_spec: bool = False

    def problems(self) -> list[str]:
        out = []
        if self.code is None:
            out.append(f"no exit within {DEADLINE_S:.0f} s")
        if "Traceback" in self.stderr:
            out.append("traceback")
        if "internal error" in self.stderr:
            out.append("internal error (a bug): " + self.stderr.strip()[:200])
        if self.seconds > DEADLINE_S:
            out.append(f"took {self.seconds:.1f} s")
        if self.peak_mb > MEMORY_MB:
            out.append(f"peak {self.peak_mb:.0f} MB")
        if self.accepted_spec:
            out.append("an invalid spec was accepted (a run would have started)")
        if self.code is not None and not self.accepted_spec:
            if self.case.expect == TOLERATE and self.code == 0:
                pass
            elif self.case.expect in (REFUSE, TOLERATE):
                if self.code != 2:
                    out.append(f"exit {self.code}, expected 2 (refused)")
                lines = self.stderr.strip().splitlines()
                if len(lines) != 1:
                    out.append(f"{len(lines)} lines on stderr, expected 1: {self.stderr[:300]!r}")
            elif self.code != self.case.expect:
                out.append(f"exit {self.code}, expected {self.case.expect}: {self.stderr.strip()[:200]}")
        return out


# ---------------------------------------------------------------------------
# Building blocks


def ev(index, type, process, f, time, **more) -> dict:
    return {"index": index, "type": type, "process": process, "f": f, "time": time, **more}


def jsonl(*events: dict) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def _write(folder: Path, name: str, data: str | bytes) -> str:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    p.write_bytes(data)
    return str(p)


def _deep_json(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def _register_with_value(value_json: str, read_json: str | None = None) -> str:
    read_json = value_json if read_json is None else read_json
    return (
        f'{{"index": 0, "type": "invoke", "process": 0, "f": "write", "value": {value_json}, "time": 1}}\n'
        f'{{"index": 1, "type": "ok", "process": 0, "f": "write", "value": {value_json}, "time": 2}}\n'
        '{"index": 2, "type": "invoke", "process": 1, "f": "read", "time": 3}\n'
        f'{{"index": 3, "type": "ok", "process": 1, "f": "read", "value": {read_json}, "time": 4}}\n'
    )


def _laughs(levels: int = 9, width: int = 9) -> str:
    """A billion-laughs block: anchor a0 of `width` items, each next level `width` aliases of the last."""
    lines = [f"x0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


SPEC_OK = "target: raftkv\nnodes: 3\nworkload: register\nnemesis: [partition]\ntime-limit: 20\n"
SUITE_HEAD = "name: hostile\ndefaults: {target: raftkv, nodes: 3, time-limit: 20}\n"


def _suite_test(body: str) -> str:
    return SUITE_HEAD + "tests:\n  - " + body + "\n"


# ---------------------------------------------------------------------------
# The cases


def cases(folder: str | os.PathLike[str], seed: int = 17) -> list[Case]:
    """Every hostile case, with its files written under `folder`."""
    d = Path(folder)
    rnd = random.Random(seed)
    out: list[Case] = []

    def check(name: str, data: str | bytes, expect: str | int, fname: str = "h.jsonl", *extra: str,
              sub: bool = False) -> None:
        out.append(Case(f"check/{name}", ["check", _write(d, f"check/{name}/{fname}", data), *extra], expect, sub))

    # --- garbage
    for i in range(12):
        data = bytes(rnd.randrange(256) for _ in range(rnd.choice([1, 7, 64, 512, 4096])))
        for fname in ("h.jsonl", "h.edn", "h.log", "h.txt"):
            check(f"garbage-{i}-{fname}", data, REFUSE, fname)
    check("empty", "", 0)
    check("whitespace", " \n\t\n\n", 0)
    check("bom", "\ufeff" + jsonl(ev(0, "invoke", 0, "read", 1)), REFUSE)
    check("nul-bytes", b"\x00" * 4096, REFUSE)
    check("open-brace", "{", REFUSE)
    check("array-not-object", "[1, 2, 3]\n", REFUSE)
    check("wrong-types", '{"index": "0", "type": 5, "process": [], "f": null, "time": "now"}\n', REFUSE)
    check("not-utf8", b'{"index": 0, "type": "invoke", "process": 0, "f": "read", "time": 1, "value": "\xff\xfe"}\n',
          REFUSE)
    check("crlf", jsonl(ev(0, "invoke", 0, "write", 1, value=1), ev(1, "ok", 0, "write", 2, value=1)).replace("\n", "\r\n"),
          0)
    check("long-line-17MiB", '{"index": 0, "value": "' + "x" * (17 * 1024 * 1024) + '"}\n', REFUSE, sub=True)
    check("edn-garbage-brackets", "}" * 100000, REFUSE, "h.edn")
    check("edn-unterminated-string", '{:type :invoke :value "' + "a" * 100000, REFUSE, "h.edn")
    # At the size bound (history.bounded.MAX_EDN_BYTES), the parser's worst cases.
    check("edn-512KiB-of-open-brackets", "[" * (512 * 1024 - 16), REFUSE, "h.edn", sub=True)
    check("edn-512KiB-of-ints", "1 " * (256 * 1024 - 8), REFUSE, "h.edn", sub=True)
    ops = "".join(f"{{:type :invoke, :process {i}, :f :read, :value nil}}\n"
                  f"{{:type :ok, :process {i}, :f :read, :value nil}}\n" for i in range(5000))
    check("edn-500KiB-of-ops", ops[: ops.rindex("{:type :invoke", 0, 500 * 1024)], 0, "h.edn", sub=True)
    check("edn-too-large", ";" + " " * (9 * 1024 * 1024) + "\n", REFUSE, "h.edn")
    check("edn-600KiB-not-simple", "{:type :invoke, :process 0, :f :add, :value #{1}}\n" * 12_000, REFUSE, "h.edn")
    check("edn-800KB-simple-ops", "".join(f"{{:type :invoke, :process {i}, :f :write, :value {i}}}\n"
                                         f"{{:type :ok, :process {i}, :f :write, :value {i}}}\n"
                                         for i in range(8_000)), 0, "h.edn", "--model", "cas-register", sub=True)
    check("porcupine-garbage", "INFO  jepsen.util - x :ok :read nil\n", REFUSE, "h.log")

    # --- nesting
    for depth in (101, 500, 5000, 100_000):
        check(f"json-nested-{depth}", _register_with_value(_deep_json(depth)), REFUSE)
        check(f"json-dict-nested-{depth}", _register_with_value('{"a": ' * depth + "1" + "}" * depth), REFUSE)
        check(f"edn-nested-{depth}", "[{:type :invoke, :process 0, :f :write, :value " + _deep_json(depth)
              + "}]", REFUSE, "h.edn")
    # Within the bound: a correct verdict, not a refusal.
    check("json-nested-50-valid", _register_with_value(_deep_json(50)), 0, "h.jsonl", "--model", "cas-register")
    check("json-nested-50-stale", _register_with_value(_deep_json(50), _deep_json(49)), 1, "h.jsonl",
          "--model", "cas-register")

    # --- huge and non-finite numbers
    big = "9" * 5000
    check("int-5000-digits-value", _register_with_value(big), REFUSE)
    check("int-301-digits-value", _register_with_value("9" * 301), REFUSE)
    check("int-5000-digits-time", '{"index": 0, "type": "invoke", "process": 0, "f": "read", '
          f'"time": {big}}}\n', REFUSE)
    check("int-1e400-time", '{"index": 0, "type": "invoke", "process": 0, "f": "read", "time": 1' + "0" * 400 + "}\n",
          REFUSE)
    check("int-1e30-time", '{"index": 0, "type": "invoke", "process": 0, "f": "read", "time": 1' + "0" * 30 + "}\n",
          REFUSE)
    check("float-1e400-time", '{"index": 0, "type": "invoke", "process": 0, "f": "read", "time": 1e400}\n', REFUSE)
    check("int-5000-digits-index", f'{{"index": {big}, "type": "invoke", "process": 0, "f": "read", "time": 1}}\n',
          REFUSE)
    check("int-5000-digits-process", f'{{"index": 0, "type": "invoke", "process": {big}, "f": "read", "time": 1}}\n',
          REFUSE)
    for const in ("NaN", "Infinity", "-Infinity"):
        check(f"json-{const}-value", _register_with_value(const), REFUSE)
        check(f"json-{const}-time", f'{{"index": 0, "type": "invoke", "process": 0, "f": "read", "time": {const}}}\n',
              REFUSE)
    check("edn-bigint-5000", "{:type :invoke, :process 0, :f :write, :value " + big + "N}\n", REFUSE, "h.edn")
    check("edn-bigint-301", "{:type :invoke, :process 0, :f :write, :value " + "9" * 301 + "}\n", REFUSE, "h.edn")
    check("edn-nan", "{:type :invoke, :process 0, :f :write, :value ##NaN}\n"
          "{:type :ok, :process 0, :f :write, :value ##NaN}\n", REFUSE, "h.edn")
    check("edn-inf", "{:type :invoke, :process 0, :f :write, :value ##Inf}\n", REFUSE, "h.edn")
    check("edn-1e400", "{:type :invoke, :process 0, :f :write, :value 1e400}\n", REFUSE, "h.edn")
    check("edn-1e400M", "{:type :invoke, :process 0, :f :write, :value 1e400M}\n", REFUSE, "h.edn")
    check("edn-time-1e400", "{:type :invoke, :process 0, :f :read, :value nil, :time 1" + "0" * 400 + "}\n",
          REFUSE, "h.edn")
    check("porcupine-int-5000", f"INFO  jepsen.util - 0\t:invoke\t:write\t{big}\n", REFUSE, "h.log")
    check("porcupine-proc-5000", f"INFO  jepsen.util - {big}\t:invoke\t:write\t1\n", REFUSE, "h.log")
    check("porcupine-kv-proc-5000", f'{{:process {big}, :type :invoke, :f :get, :key "k", :value nil}}\n',
          REFUSE, "h.txt")
    good = _write(d, "check/initial/h.jsonl", _register_with_value("1"))
    for name, initial in (("nan", "NaN"), ("deep", _deep_json(5000)), ("huge", big), ("inf", "1e400"),
                          ("garbage", "{:")):
        out.append(Case(f"check/initial-{name}", ["check", good, "--model", "cas-register", "--initial", initial],
                        REFUSE))
    for limit in ("nan", "inf", "-1", "0"):
        out.append(Case(f"check/time-limit-{limit}", ["check", good, "--time-limit", limit], REFUSE))

    # --- odd paths
    folder = d / "paths"
    folder.mkdir(parents=True, exist_ok=True)
    fifo = folder / "fifo.jsonl"
    if not fifo.exists():
        os.mkfifo(fifo)
    sparse = folder / "sparse.jsonl"
    with open(sparse, "wb") as f:
        f.truncate(1024**3)
    sparse_edn = folder / "sparse.edn"
    with open(sparse_edn, "wb") as f:
        f.truncate(1024**3)
    dangling = folder / "dangling.jsonl"
    if not dangling.is_symlink():
        dangling.symlink_to(folder / "nowhere")
    loop = folder / "loop.jsonl"
    if not loop.is_symlink():
        loop.symlink_to(loop)
    (folder / "empty-run").mkdir(exist_ok=True)
    odd = _write(d, "paths/new\nline.jsonl", _register_with_value("1"))
    for name, argv, sub in (
        ("fifo", ["check", str(fifo)], True),
        ("fifo-edn", ["check", str(fifo), "--format", "edn"], True),
        ("dev-zero", ["check", "/dev/zero", "--format", "jsonl"], True),
        ("dev-zero-edn", ["check", "/dev/zero", "--format", "edn"], True),
        ("dev-null", ["check", "/dev/null"], False),
        ("sparse-1GiB", ["check", str(sparse)], True),
        ("sparse-1GiB-edn", ["check", str(sparse_edn)], True),
        ("dangling-symlink", ["check", str(dangling)], False),
        ("symlink-loop", ["check", str(loop)], False),
        ("folder-without-history", ["check", str(folder / "empty-run")], False),
        ("empty-path", ["check", ""], False),
        ("stdin-without-format", ["check", "-"], False),
        ("export-fifo", ["export", str(fifo), "--format", "edn"], True),
        ("export-dev-zero", ["export", "/dev/zero", "--from", "jsonl", "--format", "edn"], True),
        ("report-not-a-run", ["report", str(folder)], False),
        ("suite-fifo", ["suite", str(fifo), "--list"], True),
        ("suite-dev-zero", ["suite", "/dev/zero", "--list"], True),
        ("suite-folder", ["suite", str(folder), "--list"], False),
        ("spec-fifo", ["run", "--spec", str(fifo)], True),
        ("spec-dev-zero", ["run", "--spec", "/dev/zero"], True),
        ("spec-missing", ["run", "--spec", str(folder / "missing.yaml")], False),
    ):
        out.append(Case(f"path/{name}", argv, REFUSE, sub))
    out.append(Case("path/newline-in-name", ["check", odd, "--model", "cas-register"], 0))
    out.append(Case("path/stdin-jsonl", ["check", "-", "--format", "jsonl", "--model", "cas-register"], 0, True,
                    stdin=_write(d, "paths/stdin.jsonl", _register_with_value("1"))))
    out.append(Case("path/stdin-dev-zero", ["check", "-", "--format", "jsonl"], REFUSE, True, stdin="/dev/zero"))

    # --- YAML: specs (run --spec) and suites (suite --list)
    def spec(name: str, text: str | bytes) -> None:
        out.append(Case(f"spec/{name}", ["run", "--spec", _write(d, f"spec/{name}.yaml", text)], REFUSE))

    def suite(name: str, text: str | bytes) -> None:
        out.append(Case(f"suite/{name}", ["suite", _write(d, f"suite/{name}.yaml", text), "--list"], REFUSE))

    laughs = _laughs()
    for field in ("nodes", "nemesis", "test", "seed", "options", "bugs"):
        spec(f"laughs-{field}", laughs + SPEC_OK + f"{field}: *a8\n")
    for field in ("nodes", "nemesis", "name", "seeds", "because"):
        suite(f"laughs-{field}", laughs.replace("\n", "\n") + _suite_test(f"{{{field}: *a8}}"))
    suite("laughs-defaults", laughs + "defaults: *a8\ntests: [{}]\n")
    spec("cycle", SPEC_OK + "options: &o {a: *o}\n")
    suite("cycle", _suite_test("&t {nodes: 3, x: *t}"))
    for tag in ("!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!!binary aGk="):
        spec(f"tag-{tag.split()[0][2:].replace('/', '-')}", SPEC_OK + f"test: {tag}\n")
        suite(f"tag-{tag.split()[0][2:].replace('/', '-')}", _suite_test(f"{{name: {tag}}}"))
    spec("unhashable-key", SPEC_OK + "? [1, 2]\n: 3\n")
    suite("unhashable-key", _suite_test("{? [1, 2]\n    : 3}"))
    suite("unhashable-top", "? {a: 1}\n: 2\n")
    spec("not-utf8", SPEC_OK.encode() + b"test: \xff\xfe\n")
    suite("not-utf8", _suite_test("{name: x}").encode() + b"# \xc3\x28\n")
    spec("int-5000", SPEC_OK + f"seed: {big}\n")
    suite("int-5000", _suite_test(f"{{seeds: [{big}]}}"))
    spec("nested-10000", SPEC_OK + "options: " + _deep_json(10000) + "\n")
    suite("nested-10000", _suite_test("{options: " + _deep_json(10000) + "}"))
    spec("too-large", "# " + "x" * (2 * 1024 * 1024) + "\n" + SPEC_OK)
    spec("top-level-list", "- 1\n- 2\n")
    suite("top-level-list", "- 1\n")
    for field in ("rate", "time-limit", "nemesis-interval", "warmup", "op-timeout", "recovery-limit"):
        for value in (".nan", ".inf", "-.inf", "1.0e+400"):
            spec(f"{field}-{value}", SPEC_OK + f"{field}: {value}\n")
        suite(f"{field}-nan", _suite_test(f"{{{field}: .nan}}"))
    for field, value in (("concurrency", "1000000000"), ("rate", "1.0e+9"), ("time-limit", "1.0e+12"),
                         ("nodes", "-1"), ("nodes", "1000000"), ("ops-per-key", "0"), ("keys", "-5"),
                         ("seed", "-1"), ("warmup", "-3"), ("concurrency", "1e9")):
        spec(f"absurd-{field}-{value}", SPEC_OK + f"{field}: {value}\n")
        suite(f"absurd-{field}-{value}", _suite_test(f"{{{field}: {value}}}"))
    spec("unknown-option", SPEC_OK + "options: {election_timeout_typo: 3}\n")
    for value in ("banana", "300-150", "0-10", ".nan", "true", "1" * 400):
        spec(f"option-election-timeout-{value[:10]}", SPEC_OK + f"options: {{election_timeout: {value}}}\n")
    suite("option-heartbeat-banana", _suite_test("{options: {heartbeat: banana}}"))

    # --- report on malformed run folders
    def run_folder(name: str, results: str | None, history: str | None = None) -> str:
        rd = d / "report" / name
        rd.mkdir(parents=True, exist_ok=True)
        (rd / "history.jsonl").write_text(history if history is not None else _register_with_value("1"))
        if results is not None:
            (rd / "results.json").write_text(results)
        return str(rd)

    for name, results in (
        ("list", "[]"), ("string", '"valid"'), ("nan", '{"valid": NaN}'), ("truncated", '{"valid": tr'),
        ("checkers-int", '{"valid": false, "checkers": 5}'),
        ("checkers-list", '{"valid": false, "checkers": [1, 2]}'),
        ("evidence-string", '{"valid": false, "checkers": {"linearizability": {"valid": false, "evidence": "x"}}}'),
        ("evidence-list", '{"valid": false, "checkers": {"linearizability": {"valid": false, "evidence": [1], '
         '"anomalies": 3}}}'),
        ("anomalies-dict", '{"valid": false, "anomalies": {"a": 1}, "checkers": {"x": {"valid": false, '
         '"anomalies": "many"}}}'),
        ("timings-string", '{"valid": true, "timings": "fast", "spec": 5, "run": []}'),
        ("deep", '{"valid": ' + _deep_json(5000) + "}"),
        ("huge-int", '{"valid": true, "seed": ' + big + "}"),
    ):
        out.append(Case(f"report/{name}", ["report", run_folder(name, results)],
                        TOLERATE if name in ("anomalies-dict", "timings-string") else REFUSE))
    unwritable = run_folder("unwritable", '{"valid": true}')
    (Path(unwritable) / "report.html").mkdir(exist_ok=True)  # root ignores modes; a folder in the way is refused
    (Path(unwritable) / "report.html.tmp").mkdir(exist_ok=True)
    out.append(Case("report/unwritable", ["report", unwritable], REFUSE))
    return out


# ---------------------------------------------------------------------------
# Running


@contextlib.contextmanager
def _no_runs(record: list[bool]):
    """Replace the run loop so an accepted spec is recorded, never started."""
    from harness.commands import run as run_command

    real = run_command.execute

    def execute(*args, **kwargs):
        record.append(True)
        return 0

    run_command.execute = execute
    try:
        yield
    finally:
        run_command.execute = real


class _Deadline(Exception):
    pass


def run_in_process(case: Case) -> Outcome:
    """The CLI in this process: tracemalloc's peak, a SIGALRM deadline."""
    from harness.cli import main

    accepted: list[bool] = []
    err, out = io.StringIO(), io.StringIO()

    def alarm(signum, frame):
        raise _Deadline()

    previous = signal.signal(signal.SIGALRM, alarm)
    tracemalloc.start()
    t0 = time.perf_counter()
    code: int | None
    try:
        signal.setitimer(signal.ITIMER_REAL, DEADLINE_S)
        with _no_runs(accepted), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = int(main(case.argv))
    except _Deadline:
        code = None
    except SystemExit as e:  # argparse
        code = e.code if isinstance(e.code, int) else 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return Outcome(case, code, err.getvalue(), elapsed, peak / 1e6, bool(accepted))


_CHILD = """
import json, resource, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
from hostile_inputs import _no_runs
from harness.cli import main
accepted = []
try:
    with _no_runs(accepted):
        code = int(main({argv!r}))
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else 2
sys.stderr.flush()
with open({report!r}, "w") as f:
    json.dump({{"code": code, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               "accepted": bool(accepted)}}, f)
sys.exit(code)
"""


def run_in_subprocess(case: Case) -> Outcome:
    """The CLI in a child: a hard timeout, its own peak RSS (getrusage), a 2 GB address-space cap."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as rep:
        report = rep.name
    code_text = _CHILD.format(root=str(ROOT), tests=str(ROOT / "tests"), argv=case.argv, report=report)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))

    stdin = open(case.stdin, "rb") if case.stdin else subprocess.DEVNULL
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", code_text], stdin=stdin, capture_output=True, text=True,
                              timeout=DEADLINE_S + 5, preexec_fn=limit, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        elapsed = time.perf_counter() - t0
        code, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired as e:
        elapsed, code = time.perf_counter() - t0, None
        stderr = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    finally:
        if case.stdin:
            stdin.close()
    peak, accepted = 0.0, False
    try:
        with open(report) as f:
            info = json.load(f)
        peak, accepted = info["maxrss_kb"] / 1024, info["accepted"]
    except (OSError, ValueError, KeyError):
        pass
    finally:
        with contextlib.suppress(OSError):
            os.unlink(report)
    return Outcome(case, code, stderr, elapsed, peak, accepted)


def run_case(case: Case, force_subprocess: bool = False) -> Outcome:
    return run_in_subprocess(case) if case.subprocess or force_subprocess else run_in_process(case)


def main() -> int:
    ap = argparse.ArgumentParser(description="Run every hostile case in its own subprocess and print figures.")
    ap.add_argument("--filter", default="", help="only cases whose name contains this")
    ap.add_argument("--in-process", action="store_true", help="as the test does (tracemalloc peaks)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        chosen = [c for c in cases(tmp) if args.filter in c.name]
        bad = 0
        worst_s, worst_mb = 0.0, 0.0
        print(f"{'case':<58} {'exit':>4} {'s':>6} {'MB':>7}  verdict")
        for case in chosen:
            o = run_case(case) if args.in_process else run_in_subprocess(case)
            problems = o.problems()
            bad += bool(problems)
            worst_s, worst_mb = max(worst_s, o.seconds), max(worst_mb, o.peak_mb)
            print(f"{case.name[:58]:<58} {o.code if o.code is not None else '-':>4} {o.seconds:6.2f} "
                  f"{o.peak_mb:7.1f}  {'; '.join(problems) if problems else 'ok'}")
        how = "tracemalloc peak (Python allocations)" if args.in_process else "peak RSS of each child"
        print(f"\n{len(chosen)} cases, {bad} with problems; slowest {worst_s:.2f} s, largest {worst_mb:.1f} MB ({how})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
