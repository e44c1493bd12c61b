"""The vote-crash fault: voters crash the instant they grant a vote, and one must then choose again.

Raft's election safety rests on a voter remembering, across a crash, whom it
voted for in the current term. A crash that tests this has to land after the
vote has left and before the winner's first append arrives (after that the
voter's log is ahead of any rival of that term, and it refuses them anyway):
a window of a few milliseconds that a SIGKILL from outside almost never hits.
So the target crashes itself there, through its `crash-after-vote` failpoint
(etcd's robustness tests use gofail failpoints the same way), and this module
arranges the rest with kills and restarts:

1. Find the leader L and arm the failpoint on every other node.
2. Kill L. The others elect a leader B in the next term T; every node that
   grants B its vote crashes with the failpoint's exit status, so B's first
   append reaches nobody. The observer sees B lead in T (it steps down soon,
   with no quorum left).
3. Kill B and every other node still running: they may hold B's entries,
   which would make them refuse L and win the term after T.
4. Restart L, then just enough of the crashed voters to make a majority with
   L (fewer could not elect anyone without L). L never heard of term T, so it
   campaigns for T, and it needs the restarted voters, who voted for B in T.

A voter that persisted its vote refuses L, and the cluster elects somebody in
the term after T. A voter that forgot it (the `no-persist-vote` bug) grants
it, and L leads in T as well: two leaders in one term, which the split-brain
checker reports from the observer's samples. The nemesis records what it saw
too (`outcome`), but the verdict is the checker's.

Step 4 is a race that L usually wins, having started first, but not always:
a restarted voter may time out first and win the term after T, even against
the buggy store (on loopback raftkv, L won 9 attempts of 12). The completion
says which, and `stop-vote-crash` restarts whatever step 3 left down.

The steps drive the nemesis's `ClusterControl` (Docker containers, or
loopback processes in the cluster tests): statuses by `probe_some`, exits by
`exit_codes`, the failpoint by `set_failpoint`, and kills and restarts through
the nemesis's `Processes` and its `restart` (which gives a restarted node its
partition, loss and delay back).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from nemesis.errors import NemesisError
from nemesis.family import Draw, FamilyBase, FaultContext
from nemesis.process import Processes

FAILPOINT = "crash-after-vote"
CRASH_EXIT_CODE = 86  # targets.raftkv.failpoints.CRASH_EXIT_CODE; other targets must exit with it too
LEADER_WAIT_S = 3.0  # for a leader before the fault, and for the second winner after it
ELECTION_WAIT_S = 5.0  # for the killed leader's successor
HOLD_S = 0.3  # how long B is watched leading (the observer samples every 50 ms)
POLL_S = 0.02


def _leader(statuses: dict[str, dict | None]) -> tuple[int, str] | None:
    found = [(s.get("term") or 0, n) for n, s in statuses.items() if s and s.get("role") == "leader"]
    return max(found) if found else None


def _winner(statuses: dict[str, dict | None], old_term: int, enough_crashed: bool) -> tuple[int, str] | None:
    """Who won the term after old_term, as far as the running voters tell."""
    up = {n: s for n, s in statuses.items() if s and (s.get("term") or 0) > old_term}
    if not up:
        return None
    term = max(s["term"] for s in up.values())
    at_term = {n: s for n, s in up.items() if s["term"] == term}
    for n, s in at_term.items():
        if s.get("role") == "leader":
            return term, n
    named = {s.get("leader") for s in at_term.values()} - {None}
    if len(named) == 1:
        return term, named.pop()
    if enough_crashed and len(at_term) == 1 and len(up) == len(statuses):
        node, s = next(iter(at_term.items()))
        # Still a candidate in that term: it has not won it (a winner leads, then
        # follows or pre-votes). Its votes' replies may have been lost.
        return None if s.get("role") == "candidate" else (term, node)
    return None


class VoteCrash:
    """Steps 1-4 (`start`) and their undoing (`stop`) against the cluster of a `FaultContext`."""

    def __init__(self, ctx: FaultContext, clock=time.monotonic, sleep=time.sleep):
        self.ctx = ctx
        self.c = ctx.cluster
        self.clock = clock
        self.sleep = sleep
        self.left_down: list[str] = []  # what step 3 killed and stop() restarts
        self.armed: set[str] = set()

    @property
    def active(self) -> bool:
        return bool(self.left_down or self.armed)

    def _quorum(self) -> int:
        return len(self.c.node_ids) // 2 + 1

    def _statuses(self, nodes: list[str]) -> dict[str, dict | None]:
        return self.c.probe_some(nodes, timeout=0.2)

    def _exit_codes(self, nodes: list[str]) -> dict[str, int | None]:
        codes = self.c.exit_codes()
        return {n: codes.get(n) for n in nodes}

    def _arm(self, node: str, on: bool) -> bool:
        return self.c.set_failpoint(node, FAILPOINT, on)

    def _kill(self, nodes: list[str]) -> dict:
        return self.ctx.shared(Processes).kill(nodes) if nodes else {}

    def _start(self, nodes: list[str]) -> dict:
        return self.ctx.restart(nodes) if nodes else {}

    def _wait_for_leader(self, among: list[str], timeout: float) -> tuple[int, str] | None:
        deadline = self.clock() + timeout
        while True:
            found = _leader(self._statuses(among))
            if found or self.clock() >= deadline:
                return found
            self.sleep(POLL_S)

    def start(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Steps 1-4 of the module docstring; (value, evidence) for the completion."""
        ids = list(self.c.node_ids)
        t0 = self.clock()
        steps: dict[str, Any] = {}

        def mark(step: str, **fields) -> None:
            steps[step] = {"at_s": round(self.clock() - t0, 3), **{k: v for k, v in fields.items() if v != {}}}

        if len(ids) < 3:
            return {"outcome": "skipped"}, {"note": "vote-crash needs at least 3 nodes"}
        before = self._statuses(ids)
        silent = sorted(n for n, s in before.items() if s is None)
        if silent:
            return ({"outcome": "skipped"},
                    {"note": f"vote-crash needs every node up; {', '.join(silent)} did not answer"})
        found = self._wait_for_leader(ids, LEADER_WAIT_S)
        if found is None:
            return {"outcome": "skipped"}, {"note": "no node claimed leadership"}
        old_term, old_leader = found
        voters = [n for n in ids if n != old_leader]
        mark("found-leader", leader=old_leader, term=old_term)

        for n in voters:
            if not self._arm(n, True):
                self._disarm(voters)
                raise NemesisError(f"vote-crash: {n} refused to arm its {FAILPOINT} failpoint")
            self.armed.add(n)
        mark("armed", nodes=voters)
        mark("killed-leader", node=old_leader, evidence=self._kill([old_leader]))

        first, crashed, other_exits = self._watch_election(voters, old_term)
        mark("election-over", winner=first and first[1], term=first and first[0], crashed=crashed,
             other_exits=other_exits)
        self.armed -= set(crashed) | set(other_exits)  # a crash forgets what was armed
        self._disarm(voters)
        if first is None:
            # Nobody won (split votes among too few nodes, say): put everything back,
            # including a voter that crashed after the last look.
            crashed = sorted(set(crashed) | {n for n, code in self._exit_codes(voters).items()
                                             if code == CRASH_EXIT_CODE})
            self.armed -= set(crashed)
            mark("restarted", nodes=[old_leader, *crashed], evidence=self._start([old_leader, *crashed]))
            self.left_down = sorted(other_exits)
            return ({"outcome": "no-winner", "nodes": sorted({old_leader, *crashed, *other_exits}),
                     "old_leader": old_leader, "crashed": crashed,
                     "left_down": self.left_down}, {"verified": True, "steps": steps})
        term, winner = first

        running = [n for n in voters if n not in crashed and n not in other_exits]
        mark("killed", nodes=running, evidence=self._kill(running))
        # A voter whose grant went out after our last look crashed by itself before the kill.
        late = sorted(n for n, code in self._exit_codes(running).items() if code == CRASH_EXIT_CODE)
        running = [n for n in running if n not in late]
        # Bring back voters seen crashing during the election: a late one may have
        # voted in a later term, and the winner (if it crashed voting later) would refuse L.
        back = ([n for n in crashed if n != winner] + [n for n in late if n != winner])[: self._quorum() - 1]
        crashed = sorted(set(crashed) | set(late))
        self.left_down = sorted(set(running) | set(other_exits) | (set(crashed) - set(back)))
        mark("restarted-leader", node=old_leader, evidence=self._start([old_leader]))
        mark("restarted-voters", nodes=back, evidence=self._start(back))

        second = self._wait_for_leader([old_leader, *back], LEADER_WAIT_S)
        mark("second-election", winner=second and second[1], term=second and second[0])
        if second is None:
            outcome = "no-second-winner"
        elif second[0] == term:
            outcome = "two-leaders-one-term"
        else:
            outcome = "next-term"
        value = {"outcome": outcome, "nodes": sorted({old_leader, *crashed, *running, *other_exits}),
                 "old_leader": old_leader, "first_winner": winner, "term": term,
                 "crashed": crashed, "restarted": back, "left_down": self.left_down,
                 "second_winner": second and second[1], "second_term": second and second[0]}
        return value, {"verified": True, "steps": steps}

    def _watch_election(self, voters: list[str], old_term: int):
        """(term, B) or None, the crashed voters, and voters that exited otherwise.

        Watches until B is known and has led for HOLD_S or stepped down. B
        may win and step down before the first look (killing the leader and
        checking it died takes longer than an election), so it is also known
        without being seen leading: followers of the new term name it, and
        when a majority crashed granting votes, the one voter of the new term
        left running got them.
        """
        deadline = self.clock() + ELECTION_WAIT_S
        quorum = self._quorum()
        first: tuple[int, str] | None = None
        seen_at: float | None = None
        crashed: list[str] = []
        other: dict[str, int] = {}
        while self.clock() < deadline:
            codes = self._exit_codes(voters)
            for n, code in codes.items():
                if code is None or n in crashed or n in other:
                    continue
                if code == CRASH_EXIT_CODE:
                    crashed.append(n)
                else:
                    other[n] = code
            statuses = self._statuses([n for n in voters if codes[n] is None])
            winner = _winner(statuses, old_term, enough_crashed=len(crashed) >= quorum - 1)
            if winner is not None:
                first = first or winner
                s = statuses.get(first[1])
                leading = s is not None and s.get("role") == "leader" and s.get("term") == first[0]
                if leading and seen_at is None:
                    seen_at = self.clock()
                if not leading or self.clock() - seen_at >= HOLD_S:
                    break
            self.sleep(POLL_S)
        return first, sorted(crashed), other

    def _disarm(self, nodes: list[str]) -> None:
        """Disarm what is armed among nodes; a node that is down forgot it anyway, one that refused stays listed."""
        targets = [n for n in nodes if n in self.armed]
        codes = self._exit_codes(targets) if targets else {}
        for n in targets:
            if codes.get(n) is not None or self._arm(n, False):
                self.armed.discard(n)

    def stop(self) -> tuple[list[str], dict[str, Any]]:
        """Restart what start() left down and disarm what is still armed."""
        self._disarm(sorted(self.armed))
        down, self.left_down = self.left_down, []
        codes = self._exit_codes(down) if down else {}
        down = [n for n in down if codes.get(n) is not None]
        if not down:
            return [], {"note": "no node was left down"}
        return down, self._start(down)


def target_failpoints(target) -> dict[str, str]:
    """The failpoints a target offers (name -> what it does); none unless it has `failpoints()`."""
    fn = getattr(target, "failpoints", None)
    return dict(fn()) if callable(fn) else {}


class CrashPointInjector:
    """The injector of a family that arms a target's crash point and restarts what crashed at it.

    `fault` has `armed`, `left_down`, `active` and `stop()`; `start(op)` begins
    one episode. vote-crash and first-write-crash share it: an episode's nodes
    must be back before the next one starts, and the heal is its stop.
    """

    def __init__(self, name: str, fault: Any, start: Callable[[dict[str, Any]], tuple[Any, dict[str, Any]]]):
        self.name, self.fault, self._start = name, fault, start

    def invoke(self, op: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if op["f"] == f"stop-{self.name}":
            return self.fault.stop()
        if self.fault.left_down:
            return None, {"note": f"the last {self.name} is not over: its nodes are still down"}
        return self._start(op)

    def current(self) -> list[str]:
        return ([f"{self.name}:armed"] if self.fault.armed else []) + [
            f"{self.name}:down:{n}" for n in self.fault.left_down]

    def reapply(self, node: str) -> dict[str, Any] | None:
        return None

    def after_restart(self, nodes: list[str], evidence: dict[str, Any]) -> dict[str, Any]:
        return {}

    def heal(self) -> dict[str, Any]:
        return {f"stop-{self.name}": self.fault.stop()[1]} if self.fault.active else {}


class VoteCrashFamily(FamilyBase):
    """Voters crash as they vote (a target failpoint); then one must choose again in that term."""

    name = "vote-crash"
    ops = ("start-vote-crash", "stop-vote-crash")
    leader_ops = frozenset({"start-vote-crash"})  # it kills the leader first, and names it among its nodes
    heal_rank = 30

    def problems(self, cluster, target) -> list[str]:
        if FAILPOINT not in target_failpoints(target):
            return [f"vote-crash: target {target.name} has no {FAILPOINT} failpoint "
                    "(it must crash itself right after granting a vote; see nemesis/vote_crash.py)"]
        if len(cluster.node_ids) < 3:
            return ["vote-crash needs at least 3 nodes (a leader, a winner and a voter)"]
        return []

    def injector(self, ctx):
        vc = VoteCrash(ctx)
        return CrashPointInjector(self.name, vc, lambda op: vc.start())

    def draw(self, rng, nodes, busy, target=None):
        return Draw("start-vote-crash", None)  # it picks its nodes from who leads at the time

    def strategy(self, nodes):
        from hypothesis import strategies as st

        return st.none()

    def label(self, f, value):
        if f == "start-vote-crash" and isinstance(value, dict) and isinstance(value.get("outcome"), str):
            return f"vote-crash: {value['outcome']}"
        return f


VOTE_CRASH = VoteCrashFamily()
