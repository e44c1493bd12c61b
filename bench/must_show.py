"""The "Must show" campaign of issues 4 and 5: a named matrix of `splitbrain run`s, one at a time.

Each run gets its own --store folder under the campaign directory and a fixed seed, so any row
of the table can be repeated with the command printed next to it. After every run the script
removes that run's containers and network (`splitbrain clean --run ID`, never --all) and reads
its results.json. It prints one row per run (exit code, verdict per checker, anomaly types, how
many seconds after the first nemesis operation the first anomalous operation was, which nemesis
operations came before it, run duration) and a tally per scenario against the issue's threshold
("caught 5/5, need >= 4"). The anomaly time is results.json's anomalies_found_at (the return of
the operation the linearizability checker cannot place, the ack of the first lost add, the first
split-brain observation); the first fault is the first nemesis invoke in history.jsonl.

    .venv/bin/python bench/must_show.py --campaign /tmp/must-show            # everything, seeds 1-5
    .venv/bin/python bench/must_show.py --campaign /tmp/must-show -s A,B --seeds 1-3
    .venv/bin/python bench/must_show.py --campaign /tmp/must-show --table-only   # re-read, no runs
    .venv/bin/python bench/must_show.py --bad-specs                          # exit-2 checks only

The table is also written to CAMPAIGN/table.md and the raw rows to CAMPAIGN/rows.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SPLITBRAIN = str(REPO / ".venv" / "bin" / "splitbrain")


# --- what each scenario must show -------------------------------------------------------------

def split_brain_types(res: dict) -> list[str]:
    sb = (res.get("checkers") or {}).get("split-brain") or {}
    return sorted({a.get("type", "?") for a in sb.get("anomalies") or []})


def lost_count(res: dict) -> int:
    s = (res.get("checkers") or {}).get("set") or {}
    return int(s.get("lost_count") or 0)


def linearizable(res: dict) -> Any:
    return ((res.get("checkers") or {}).get("linearizability") or {}).get("valid")


def keys_summary(res: dict) -> str:
    keys = ((res.get("checkers") or {}).get("linearizability") or {}).get("keys") or {}
    if not keys:
        return "-"
    return f"{len(keys.get('settled') or [])}/{len(keys.get('unknown') or [])}"


def elections(res: dict) -> Any:
    sb = (res.get("checkers") or {}).get("split-brain") or {}
    return (sb.get("timeline") or {}).get("elections", "-")


def anomaly_types(res: dict) -> list[str]:
    """Every anomaly a run reported, one short word each."""
    out = list(split_brain_types(res))
    if linearizable(res) is False:
        out.append("non-linearizable")
    sets = (res.get("checkers") or {}).get("set") or {}
    if lost_count(res):
        out.append(f"lost-writes({lost_count(res)})")
    if sets.get("unexpected"):
        out.append(f"unexpected({len(sets['unexpected'])})")
    if sets.get("duplicated"):
        out.append(f"duplicated({len(sets['duplicated'])})")
    return out


@dataclass
class Scenario:
    name: str
    title: str
    args: list[str]                      # passed to `splitbrain run` (seed and store added per run)
    goal: str                            # "valid": every seed exits 0; "caught": `caught` holds
    need: int                            # how many of 5 seeds must meet the goal
    caught: Callable[[dict], bool] = lambda r: False
    checkers: tuple[str, ...] = ()       # whose first-anomaly time counts for "found after"
    spec: dict | None = None             # written to a spec file and passed with --spec
    notes: str = ""


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario(
        "A", "correct raftkv, 5 nodes, partition+kill+pause+clock",
        ["--nodes", "5", "--nemesis", "partition,kill,pause,clock"],
        goal="valid", need=5,
        notes="issue 4 and issue 5: a correct raftkv is valid and never has two leaders in a term"),
    Scenario(
        "B", "--bug stale-read, partitions",
        ["--nodes", "5", "--nemesis", "partition", "--bug", "stale-read"],
        goal="caught", need=4, caught=lambda r: linearizable(r) is False,
        checkers=("linearizability",)),
    Scenario(
        "B-leader", "--bug stale-read, partitions, clients ask only the leader they see",
        ["--nodes", "5", "--nemesis", "partition", "--bug", "stale-read", "--routing", "leader"],
        goal="caught", need=4, caught=lambda r: linearizable(r) is False,
        checkers=("linearizability",),
        notes="B's pinned clients read from lagging followers, which is stale with no fault at all; "
              "here only a deposed leader the observer still names can answer stale"),
    Scenario(
        "C", "--bug ack-before-replicate, set workload, kill+partition",
        ["--nodes", "5", "--workload", "set", "--nemesis", "kill,partition",
         "--bug", "ack-before-replicate"],
        goal="caught", need=4, caught=lambda r: lost_count(r) > 0,
        checkers=("set",)),
    Scenario(
        "C-reg", "--bug ack-before-replicate, register workload, kill+partition",
        ["--nodes", "5", "--workload", "register", "--nemesis", "kill,partition",
         "--bug", "ack-before-replicate"],
        goal="caught", need=4, caught=lambda r: linearizable(r) is False,
        checkers=("linearizability",),
        notes="the register workload sees lost writes as non-linearizable reads"),
    Scenario(
        "D", "--bug no-persist-vote, 5 nodes, vote-crash (voters crash as they vote, the old leader returns)",
        ["--nodes", "5", "--nemesis", "vote-crash", "--nemesis-interval", "6", "--bug", "no-persist-vote"],
        goal="caught", need=4, caught=lambda r: "two-leaders-one-term" in split_brain_types(r),
        checkers=("split-brain",),
        notes="random kills never land between a vote leaving and the winner's first append "
              "(D-kill: 0 of 10 seeds before vote-crash existed); the failpoint does"),
    Scenario(
        "D-kill", "--bug no-persist-vote, 3 nodes, kill every 1 s, short elections",
        ["--nodes", "3", "--nemesis", "kill", "--nemesis-interval", "1", "--bug", "no-persist-vote"],
        goal="caught", need=4, caught=lambda r: "two-leaders-one-term" in split_brain_types(r),
        checkers=("split-brain",),
        spec={"options": {"election_timeout": "50-100", "heartbeat": 20}},
        notes="plain kills, kept to show what they miss"),
    Scenario(
        "A-vc", "correct raftkv, 5 nodes, vote-crash",
        ["--nodes", "5", "--nemesis", "vote-crash", "--nemesis-interval", "6"],
        goal="valid", need=5,
        notes="scenario D's double-vote attempts against votes that are persisted: never two leaders in a term"),
    Scenario(
        "A-mix", "correct raftkv, 5 nodes, vote-crash with partition+kill+pause+clock",
        ["--nodes", "5", "--nemesis", "vote-crash,partition,kill,pause,clock", "--nemesis-interval", "4"],
        goal="valid", need=5,
        notes="vote-crash mixed with the other faults (it skips while another fault has a node down)"),
    Scenario(
        "E", "--bug lease-no-checkquorum, lease reads, partitions",
        ["--nodes", "5", "--nemesis", "partition", "--bug", "lease-no-checkquorum"],
        goal="caught", need=4,
        caught=lambda r: "dual-serving" in split_brain_types(r) and linearizable(r) is False,
        checkers=("split-brain", "linearizability"),
        spec={"options": {"lease_reads": True}}),
]}

DEFAULT_ORDER = ["A", "B", "C", "D", "E"]


# --- reading one run ----------------------------------------------------------------------------

@dataclass
class Row:
    scenario: str
    seed: int
    exit_code: int | None
    wall_s: float
    run_dir: str | None = None
    results: dict = field(default_factory=dict)
    error: str | None = None
    _first_fault: float | None = None

    def verdicts(self) -> dict[str, Any]:
        return {name: c.get("valid") for name, c in (self.results.get("checkers") or {}).items()}

    def first_anomaly(self, checkers: tuple[str, ...]) -> tuple[float, list[str]] | None:
        """(seconds since the run began, nemesis ops begun before it) of the earliest anomalous
        operation the scenario's checkers placed in time (results.json anomalies_found_at)."""
        at = self.results.get("anomalies_found_at") or {}
        found = sorted((at[c]["at_s"], at[c].get("after_faults") or []) for c in checkers
                       if c in at and at[c].get("at_s") is not None)
        return found[0] if found else None

    def first_fault_s(self) -> float | None:
        """When the first nemesis operation began, in seconds since the run began (history.jsonl)."""
        if self._first_fault is None and self.run_dir:
            self._first_fault = first_fault_in(Path(self.run_dir) / "history.jsonl")
        return self._first_fault

    def found_after(self, checkers: tuple[str, ...]) -> float | None:
        """Seconds from the first fault to the first anomalous operation (negative: the anomaly
        came before any fault); None where no checker placed its anomaly in time."""
        first = self.first_anomaly(checkers)
        if first is not None and self.first_fault_s() is not None:
            return round(first[0] - self.first_fault_s(), 3)
        return None

    def as_dict(self) -> dict:
        return {"scenario": self.scenario, "seed": self.seed, "exit_code": self.exit_code,
                "wall_s": self.wall_s, "run_dir": self.run_dir, "error": self.error,
                "verdicts": self.verdicts(), "anomalies": anomaly_types(self.results),
                "anomalies_found_at": self.results.get("anomalies_found_at"),
                "first_fault_s": self.first_fault_s(),
                "run_s": (self.results.get("timings") or {}).get("run_s")}


def first_fault_in(history: Path) -> float | None:
    try:
        with open(history) as f:
            for line in f:
                if '"nemesis"' not in line:
                    continue
                e = json.loads(line)
                if e.get("process") == "nemesis" and e.get("type") == "invoke":
                    return e["time"] / 1e9
    except (OSError, ValueError):
        return None
    return None


def find_results(store: Path) -> Path | None:
    found = sorted({p.resolve() for p in store.glob("*/*/results.json")}, key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def read_row(scenario: str, seed: int, store: Path, exit_code: int | None, wall_s: float,
             error: str | None = None) -> Row:
    row = Row(scenario, seed, exit_code, wall_s, error=error)
    path = find_results(store)
    if path is not None:
        try:
            row.results = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            row.error = f"results.json unreadable: {e}"
        row.run_dir = str(path.parent)
    elif row.error is None:
        row.error = "no results.json"
    return row


# --- the table ---------------------------------------------------------------------------------

def fmt_verdict(v: Any) -> str:
    return {True: "valid", False: "INVALID", "unknown": "unknown", None: "-"}.get(v, str(v))


def met(sc: Scenario, row: Row) -> bool:
    if sc.goal == "valid":
        return row.exit_code == 0
    return sc.caught(row.results)


def faults_before(r: Row, sc: Scenario) -> str:
    first = r.first_anomaly(sc.checkers) if sc.checkers else None
    if first is None:
        return "-"
    return "+".join(first[1]) or "none"


def table(rows: list[Row], scenarios: dict[str, Scenario] = SCENARIOS) -> str:
    head = ["scen", "seed", "exit", "linearizability", "split-brain", "set", "anomalies",
            "s after 1st fault", "faults before it", "keys settled/unknown", "elections", "run s", "met"]
    lines = [head]
    for r in rows:
        sc = scenarios[r.scenario]
        v = r.verdicts()
        fa = r.found_after(sc.checkers) if sc.checkers else None
        lines.append([
            r.scenario, str(r.seed), "-" if r.exit_code is None else str(r.exit_code),
            fmt_verdict(v.get("linearizability")), fmt_verdict(v.get("split-brain")),
            fmt_verdict(v.get("set")), ",".join(anomaly_types(r.results)) or (r.error or "-"),
            "-" if fa is None else f"{fa:.1f}",
            faults_before(r, sc),
            keys_summary(r.results), str(elections(r.results)),
            f"{(r.results.get('timings') or {}).get('run_s', r.wall_s):.0f}",
            "yes" if met(sc, r) else "NO",
        ])
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in lines]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def tallies(rows: list[Row], scenarios: dict[str, Scenario] = SCENARIOS) -> str:
    out = []
    for name in dict.fromkeys(r.scenario for r in rows):
        sc = scenarios[name]
        mine = [r for r in rows if r.scenario == name]
        n = sum(met(sc, r) for r in mine)
        word = "valid" if sc.goal == "valid" else "caught"
        need = min(sc.need, len(mine)) if sc.goal == "valid" else sc.need
        times = [t for r in mine if met(sc, r) for t in [r.found_after(sc.checkers)] if t is not None]
        when = (f"; first anomalous op {min(times):.1f} to {max(times):.1f} s after the first fault"
                " (negative: before any fault)") if times else ""
        ok = "OK" if (n >= need if sc.goal == "caught" else n == len(mine)) else "SHORT"
        need_s = f"need {need}/{len(mine)}" if sc.goal == "valid" else f"need >= {sc.need}/5"
        out.append(f"{name}: {word} {n}/{len(mine)} ({need_s}) {ok}{when} -- {sc.title}")
    return "\n".join(out)


# --- running -----------------------------------------------------------------------------------

def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            seeds.extend(range(int(lo), int(hi) + 1))
        else:
            seeds.append(int(part))
    return seeds


def run_command(sc: Scenario, seed: int, store: Path, time_limit: int, campaign: Path) -> list[str]:
    cmd = [SPLITBRAIN, "run", *sc.args, "--time-limit", str(time_limit), "--seed", str(seed),
           "--store", str(store), "--quiet"]
    if sc.spec:
        spec_file = campaign / f"spec-{sc.name}.yaml"
        spec_file.write_text(json.dumps(sc.spec) + "\n")   # JSON is YAML
        cmd[2:2] = ["--spec", str(spec_file)]
    return cmd


def clean(row: Row) -> None:
    run_id = row.results.get("run_id")
    if not run_id and row.run_dir:
        run_id = None
    if run_id:
        subprocess.run([SPLITBRAIN, "clean", "--run", run_id], cwd=REPO,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_one(sc: Scenario, seed: int, campaign: Path, time_limit: int, log) -> Row:
    store = campaign / f"{sc.name}-seed{seed}"
    store.mkdir(parents=True, exist_ok=True)
    cmd = run_command(sc, seed, store, time_limit, campaign)
    log(f"$ {' '.join(cmd)}")
    t0 = time.monotonic()
    error = None
    with open(store / "harness.out", "w") as out:
        try:
            p = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                               timeout=time_limit * 4 + 180)
            code: int | None = p.returncode
        except subprocess.TimeoutExpired:
            code, error = None, "harness timed out"
    row = read_row(sc.name, seed, store, code, round(time.monotonic() - t0, 1), error)
    clean(row)
    return row


def save(campaign: Path, rows: list[Row]) -> None:
    (campaign / "rows.json").write_text(json.dumps([r.as_dict() for r in rows], indent=1) + "\n")
    (campaign / "table.md").write_text(table(rows) + "\n\n" + tallies(rows) + "\n")


def load_existing(campaign: Path, names: list[str]) -> list[Row]:
    rows = []
    for name in names:
        for store in sorted(campaign.glob(f"{name}-seed*"), key=lambda p: int(p.name.rsplit("seed", 1)[1])):
            seed = int(store.name.rsplit("seed", 1)[1])
            row = read_row(name, seed, store, None, 0.0)
            row.exit_code = row.results.get("exit_code")
            rows.append(row)
    return rows


# --- bad specs: one clear line and exit 2 --------------------------------------------------------

def bad_spec_checks(campaign: Path, log) -> list[tuple[str, int, str]]:
    campaign.mkdir(parents=True, exist_ok=True)
    bad_yaml = campaign / "malformed.yaml"
    bad_yaml.write_text("nodes: [5\nnemesis: partition\n")
    store = campaign / "bad-specs"
    cases = [
        ("unknown nemesis", ["--nemesis", "meteor"]),
        ("zero nodes", ["--nodes", "0"]),
        ("malformed YAML", ["--spec", str(bad_yaml)]),
        ("fault the kernel cannot do (delay)", ["--nemesis", "delay"]),
        ("unknown bug", ["--bug", "no-such-bug"]),
    ]
    out = []
    for what, args in cases:
        cmd = [SPLITBRAIN, "run", *args, "--time-limit", "5", "--store", str(store), "--quiet"]
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
        text = (p.stdout + p.stderr).strip()
        lines = [line for line in text.splitlines() if line.strip()]
        out.append((what, p.returncode, " / ".join(lines)))
        log(f"{what}: exit {p.returncode}, {len(lines)} line(s): {' / '.join(lines)}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--campaign", type=Path, default=Path("/tmp/must-show"))
    ap.add_argument("-s", "--scenarios", default=",".join(DEFAULT_ORDER),
                    help=f"comma-separated, of {', '.join(SCENARIOS)} (default {','.join(DEFAULT_ORDER)})")
    ap.add_argument("--seeds", default="1-5")
    ap.add_argument("--time-limit", type=int, default=60)
    ap.add_argument("--table-only", action="store_true", help="read the campaign folder, run nothing")
    ap.add_argument("--bad-specs", action="store_true", help="only the exit-2 checks of bad specs")
    ap.add_argument("--dry-run", action="store_true", help="print the commands only")
    a = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, flush=True)

    if a.bad_specs:
        results = bad_spec_checks(a.campaign, log)
        return 0 if all(code == 2 for _, code, _ in results) else 1
    names = [n.strip() for n in a.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"must_show: unknown scenario {', '.join(unknown)} (known: {', '.join(SCENARIOS)})", file=sys.stderr)
        return 2
    seeds = parse_seeds(a.seeds)
    a.campaign.mkdir(parents=True, exist_ok=True)
    if a.table_only:
        rows = load_existing(a.campaign, names)
    else:
        rows = [r for r in load_existing(a.campaign, list(SCENARIOS)) if r.scenario not in names]
        for name in names:
            sc = SCENARIOS[name]
            for seed in seeds:
                if a.dry_run:
                    log(" ".join(run_command(sc, seed, a.campaign / f"{name}-seed{seed}", a.time_limit, a.campaign)))
                    continue
                load = os.getloadavg()
                row = run_one(sc, seed, a.campaign, a.time_limit, log)
                rows.append(row)
                log(f"  {name} seed {seed}: exit {row.exit_code}, {','.join(anomaly_types(row.results)) or 'no anomaly'}"
                    f", {row.wall_s:.0f} s (load before {load[0]:.1f}) {row.run_dir or row.error}")
                save(a.campaign, rows)
        if a.dry_run:
            return 0
    print(table(rows))
    print()
    print(tallies(rows))
    save(a.campaign, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
