"""The first-write-crash fault: leaders die with a client entry on their own disk only, one after another.

Raft's Figure 8: a leader of term 2 writes an entry at index i and crashes
before it leaves; a leader of term 3 writes another entry at i and crashes the
same way; the first comes back, leads term 4 and re-replicates its term-2
entry to a majority. A store that commits an earlier term's entry by counting
its replicas (the `commit-old-term` bug, which also skips the start-of-term
no-op) commits it now; when that leader dies before an entry of its own term
is on a majority, the term-3 leader can still win term 5 and overwrite index
i on every node that had not committed it: nodes that applied the term-2
entry and nodes that applied the term-3 one disagree from then on, and a read
served by one contradicts a read served by the other. A correct store commits
nothing of term 2 in term 4 until an entry of term 4 is on a majority, and
that entry makes the term-3 leader's log too old to win.

A kill from outside almost never lands between a leader's fsync of a client
entry and its appends leaving (they leave in the same instant), so the target
crashes itself there, through its `crash-before-send-first-write` failpoint
(like vote-crash's `crash-after-vote`), and this module arranges the rest. The
simulator's "bounce-first-writes" fault (targets/raftkv/sim.py) is the model:

1. Arm the failpoint on every running node, for a window of `window_s` seconds.
2. Whenever a node exits with the failpoint's status (it led, took a client
   write and died before sending it), note it: the k-th such crash of the
   window keeps that node down k * `base_s` seconds, so the first to die comes
   back first, and a later leader of a higher term stays away longer.
3. Restart each crashed node when its time is up (the nemesis's restart: it
   gets its partition, loss and delay back), and arm it again if the window
   is still open.
4. When the window closes, disarm every node, and go on restarting those still
   down at their times (disarmed: they crash no more).

The start op does all four and returns once every node it crashed is back;
the op's completion lists each crash (node, exit status, when, how long it
stayed down, when it answered again). `stop-first-write-crash` disarms and
restarts whatever the start left (a node that exited with another status, or
one that refused its disarm). The verdict is the checkers': the register
workload's linearizability checker sees reads that contradict each other.
"""

from __future__ import annotations

import time
from typing import Any

from nemesis.errors import NemesisError, NemesisOpError
from nemesis.family import Draw, FamilyBase, FaultContext, number
from nemesis.vote_crash import CrashPointInjector, target_failpoints

FAILPOINT = "crash-before-send-first-write"
CRASH_EXIT_CODE = 86  # targets.raftkv.failpoints.CRASH_EXIT_CODE; other targets must exit with it too
BASE_DELAYS_S = (0.25, 0.5, 1.0)  # the seeded schedule's choices of base_s
WINDOWS_S = (3.0, 5.0, 8.0)  # ... and of window_s
DEFAULT_BASE_S = 0.5
DEFAULT_WINDOW_S = 5.0
MAX_BASE_S = 30.0
MAX_WINDOW_S = 120.0
POLL_S = 0.05


class FirstWriteCrash:
    """Steps 1-4 (`start`) and their undoing (`stop`) against the cluster of a `FaultContext`."""

    def __init__(self, ctx: FaultContext, clock=time.monotonic, sleep=time.sleep):
        self.ctx = ctx
        self.c = ctx.cluster
        self.clock = clock
        self.sleep = sleep
        self.armed: set[str] = set()  # armed, as far as we know, and not seen to crash since
        self.left_down: list[str] = []  # what stop() restarts

    @property
    def active(self) -> bool:
        return bool(self.armed or self.left_down)

    def _exit_codes(self) -> dict[str, int | None]:
        codes = self.c.exit_codes()
        return {n: codes.get(n) for n in self.c.node_ids}

    def _arm(self, node: str, on: bool) -> bool:
        return self.c.set_failpoint(node, FAILPOINT, on)

    def start(self, base_s: float = DEFAULT_BASE_S, window_s: float = DEFAULT_WINDOW_S
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Steps 1-4 of the module docstring; (value, evidence) for the completion."""
        t0 = self.clock()

        def at() -> float:
            return round(self.clock() - t0, 3)

        states = self.c.states()
        running = [n for n in self.c.node_ids if states.get(n) == "running"]
        skipped = sorted(set(self.c.node_ids) - set(running))
        for n in running:
            if not self._arm(n, True):
                self._disarm_all()
                raise NemesisError(f"first-write-crash: {n} refused to arm its {FAILPOINT} failpoint")
            self.armed.add(n)

        crashes: list[dict[str, Any]] = []
        other_exits: dict[str, int] = {}
        pending: list[tuple[float, str, dict[str, Any]]] = []  # (due, node, its crash record)
        restarts: dict[str, list[dict[str, Any]]] = {}
        failed: set[str] = set()  # restarted, and exited again at once
        closed_at: float | None = None
        deadline = t0 + window_s
        while True:
            codes = self._exit_codes()
            for n in sorted(self.armed):
                code = codes.get(n)
                if code is None:
                    continue
                self.armed.discard(n)  # a crash forgets what was armed
                if code != CRASH_EXIT_CODE:
                    other_exits[n] = code
                    continue
                k = len(crashes) + 1
                rec = {"node": n, "exit_code": code, "k": k, "crashed_at_s": at(), "down_s": round(k * base_s, 3)}
                crashes.append(rec)
                pending.append((self.clock() + k * base_s, n, rec))
            for item in sorted(p for p in pending if p[0] <= self.clock()):
                pending.remove(item)
                _, n, rec = item
                ev = self.ctx.restart([n])
                restarts.setdefault(n, []).append(ev)
                node_ev = (ev.get("nodes") or {}).get(n) or {}
                rec.update(restarted_at_s=at(), answers=bool(node_ev.get("answers")))
                if "exit_code" in node_ev:  # it started and exited at once: the target's outcome, left down
                    rec["exit_code_after_restart"] = node_ev["exit_code"]
                    failed.add(n)
                if self.clock() < deadline and rec["answers"]:
                    rec["rearmed"] = self._arm(n, True)
                    if rec["rearmed"]:
                        self.armed.add(n)
            if closed_at is None and self.clock() >= deadline:
                closed_at = at()
                self._disarm_all()  # a node that crashed just before keeps its place in `armed` for one more look
                continue
            if closed_at is not None and not pending and not any(codes.get(n) is not None for n in self.armed):
                break
            self.sleep(POLL_S)
        # Still armed now: running and refusing the disarm (stop tries again), or exited since the last look.
        codes = self._exit_codes()
        self.left_down = sorted(set(other_exits) | failed | {n for n in self.armed if codes.get(n) is not None})
        crashed = {x["node"] for x in crashes}
        value = {"nodes": sorted(crashed | set(other_exits)), "base_s": base_s, "window_s": window_s,
                 "armed": running, "crashes": crashes, "other_exits": other_exits,
                 "left_down": self.left_down, **({"skipped": skipped} if skipped else {})}
        verified = all(e.get("verified") for evs in restarts.values() for e in evs)
        return value, {"verified": verified, "window_closed_at_s": closed_at, "restarts": restarts,
                       "still_armed": sorted(self.armed)}

    def _disarm_all(self) -> None:
        """Disarm every armed node; a node that refuses stays listed (it may just have crashed at it)."""
        for n in sorted(self.armed):
            if self._arm(n, False):
                self.armed.discard(n)

    def stop(self) -> tuple[list[str], dict[str, Any]]:
        """Disarm what is still armed and restart whatever the start left down."""
        codes = self._exit_codes()
        exited = {n for n in self.armed if codes.get(n) is not None}
        self.armed -= exited
        self._disarm_all()
        down, self.left_down = sorted(set(self.left_down) | exited), []
        down = [n for n in down if codes.get(n) is not None]
        evidence: dict[str, Any] = {"still_armed": sorted(self.armed)} if self.armed else {}
        if not down:
            return [], {**evidence, "note": "no node was left down"}
        return down, {**evidence, **self.ctx.restart(down)}


class FirstWriteCrashFamily(FamilyBase):
    """Leaders crash with a client entry on their own disk only, the k-th staying down k times as long."""

    name = "first-write-crash"
    ops = ("start-first-write-crash", "stop-first-write-crash")
    leader_ops = frozenset({"start-first-write-crash"})  # every node it crashes was leading
    heal_rank = 32

    def problems(self, cluster, target) -> list[str]:
        if FAILPOINT not in target_failpoints(target):
            return [f"first-write-crash: target {target.name} has no {FAILPOINT} failpoint (a leader must "
                    "crash itself after writing a client entry, before sending it; see nemesis/first_write_crash.py)"]
        return []

    def validate(self, op: dict[str, Any], node_ids: list[str]) -> dict[str, Any]:
        f = op["f"]
        if f != self.start_op:
            return {"f": f}
        value = op.get("value")
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise NemesisOpError(f"{f}: expected {{base_s, window_s}}, got {value!r}")
        unknown = set(value) - {"base_s", "window_s"}
        if unknown:
            raise NemesisOpError(f"{f}: unknown field(s) {', '.join(sorted(unknown))}; known: base_s, window_s")
        base = number(value.get("base_s", DEFAULT_BASE_S), f, "base_s")
        window = number(value.get("window_s", DEFAULT_WINDOW_S), f, "window_s")
        if not 0 < base <= MAX_BASE_S:
            raise NemesisOpError(f"{f}: base_s must be in (0, {MAX_BASE_S:g}], got {base:g}")
        if not 0 < window <= MAX_WINDOW_S:
            raise NemesisOpError(f"{f}: window_s must be in (0, {MAX_WINDOW_S:g}], got {window:g}")
        return {"f": f, "base_s": base, "window_s": window}

    def injector(self, ctx):
        fw = FirstWriteCrash(ctx)
        return CrashPointInjector(self.name, fw, lambda op: fw.start(op["base_s"], op["window_s"]))

    def draw(self, rng, nodes, busy, target=None):
        # It crashes whoever leads while it is armed, so it names no nodes.
        return Draw(self.start_op, {"base_s": rng.choice(BASE_DELAYS_S), "window_s": rng.choice(WINDOWS_S)})

    def strategy(self, nodes):
        from hypothesis import strategies as st

        return st.fixed_dictionaries({"base_s": st.sampled_from(BASE_DELAYS_S),
                                      "window_s": st.sampled_from(WINDOWS_S)})

    def label(self, f, value):
        if f == self.start_op and isinstance(value, dict) and isinstance(value.get("crashes"), list):
            n = len(value["crashes"])
            return f"first-write-crash: {n} crash{'es' if n != 1 else ''}"
        return f

    def describe(self, op):
        value = op.get("value")
        if op.get("f") == self.start_op and isinstance(value, dict) and {"base_s", "window_s"} <= set(value):
            return f"{op['f']} base {value['base_s']:g}s window {value['window_s']:g}s"
        return op["f"]


FIRST_WRITE_CRASH = FirstWriteCrashFamily()
