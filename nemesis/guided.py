"""A guided fault schedule: the next fault is chosen from what the run has seen so far.

The random schedule (nemesis.schedule) fixes every fault before the run starts. The guided one decides
at each step, every `interval` seconds, from an abstract state of the cluster summarised over the
step just past (from the observer's status samples and the clients' outcomes):

    leader changes 0/1/2+, the term's growth 0/1/2+, two nodes claiming to lead at once, a moment with
    no leader, a commit index that did not move, clients served: all/some/none.

The faults themselves are not part of the state: novelty is in what the cluster did, not in what
the nemesis chose (else every new mix of active faults would count as a discovery).

Actions are "start family F in shape S" (a partition's grudge, a kill aimed at the leader or at
drawn nodes, a bounce), "stop F" and "hold". An action is rewarded by the novelty of the state it
led to (1 for a state never seen, 1/sqrt(n) for one seen n times), and chosen by UCB1 over a moving average of those
rewards: faults that led to new states are favoured, every action is still tried. This is the idea
of coverage-guided greybox fuzzing applied to fault injection (Mallory, CCS 2023, learns over
abstract states of the same kind); the planner here is small on purpose.

Pure: it sees only what it is fed (`observe`, `client`) and decides from its seeded rng, so the same
seed and the same observations give the same decisions. A run's decisions depend on its timing,
so a guided run is replayed from the ops it played (recorded in its history and its schedule.yaml),
not from the seed alone.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from nemesis.family import LEADER, ScheduledOp
from nemesis.registry import family
from nemesis.schedule import BOUNCE_DELAYS
from plugins.registry import PluginError

HOLD = ("hold", "", "")
# How many draws of a family are looked at to find its shapes: enough to see every grudge.
SHAPE_DRAWS = 24
EXPLORE = 0.2  # UCB1's exploration weight: rewards are in [0, 1]
RECENCY = 0.3  # weight of an action's latest reward in its moving average


def _bucket(n: int) -> int:
    return min(n, 2)


@dataclass
class Window:
    """What one step saw: folded into an abstract state when the step ends."""

    leaders: set[tuple[str, int]] = field(default_factory=set)  # (node, term) claims seen
    terms: list[int] = field(default_factory=list)
    commits: list[int] = field(default_factory=list)
    two_leaders: bool = False
    leaderless: bool = False
    ok: int = 0
    not_ok: int = 0


class GuidedPlanner:
    """Decides the fault ops of one run step by step; see the module docstring."""

    def __init__(self, seed: int, faults: list[str] | tuple[str, ...], nodes: list[str], interval: float,
                 time_limit: float, target: Any = None):
        self.rng = random.Random(f"{seed}:guided")
        self.nodes = list(nodes)
        self.interval = interval
        self.time_limit = time_limit
        self.target = target
        self.fams = {}
        for name in faults:
            try:
                self.fams[name] = family(name)
            except PluginError:
                continue  # Nemesis.problems() refuses it before the run
        self.active: dict[str, tuple[str, ...]] = {}  # family -> nodes it keeps busy
        self.latest: dict[str, dict] = {}  # node -> its last status sample
        self.window = Window()
        self.seen: dict[tuple, int] = {}
        self.stats: dict[tuple, list[float]] = {}  # action -> [recent reward, tries]
        self.last: tuple | None = None  # the action of the step that just ended
        self.decisions: list[dict[str, Any]] = []  # for the run folder: state, action, reward

    # ---------------------------------------------------------------- what the run feeds it

    def observe(self, node: str, sample: dict[str, Any] | None) -> None:
        w = self.window
        if sample is None:
            self.latest.pop(node, None)
        else:
            self.latest[node] = sample
            term = sample.get("term")
            if isinstance(term, int):
                w.terms.append(term)
            commit = sample.get("commit_index")
            if isinstance(commit, int):
                w.commits.append(commit)
            if sample.get("role") == "leader":
                w.leaders.add((node, term if isinstance(term, int) else 0))
        if len(self.latest) > len(self.nodes) // 2:  # a majority answers: what it says is the cluster's
            claiming = [n for n, s in self.latest.items() if s.get("role") == "leader"]
            w.two_leaders |= len(claiming) > 1
            w.leaderless |= not claiming

    def client(self, kind: str) -> None:
        if kind == "ok":
            self.window.ok += 1
        else:
            self.window.not_ok += 1

    # ---------------------------------------------------------------- deciding

    def state(self) -> tuple:
        w = self.window
        served = w.ok + w.not_ok
        share = "none" if served and not w.ok else ("all" if not w.not_ok else "some")
        return (
            _bucket(max(0, len(w.leaders) - 1)),
            _bucket(max(w.terms) - min(w.terms)) if w.terms else 0,
            w.two_leaders,
            w.leaderless,
            bool(w.commits) and max(w.commits) == min(w.commits),
            share,
        )

    def steps(self) -> list[float]:
        """The decision times, as the random schedule's: every interval up to the time limit."""
        out, at = [], self.interval
        while at < self.time_limit:
            out.append(round(at, 3))
            at += self.interval
        return out

    def decide(self, at: float) -> list[ScheduledOp]:
        """The ops to play now, `at` seconds into the fault phase; ends the step that led here."""
        state = self.state()
        n = self.seen.get(state, 0) + 1
        self.seen[state] = n
        reward = 1 / math.sqrt(n)
        if self.last is not None:
            # A moving average, not the mean: every state's novelty fades as it recurs, and a mean would keep
            # crediting whichever actions happened to come first, when everything was new.
            s = self.stats.setdefault(self.last, [0.0, 0])
            s[0] = reward if not s[1] else s[0] + RECENCY * (reward - s[0])
            s[1] += 1
        self.window = Window()
        actions = self._actions()
        action = self._choose(actions)
        self.last = action[:3]
        self.decisions.append({"at": at, "state": list(state), "active": sorted(self.active),
                               "reward_of_last": round(reward, 3), "action": list(action[:3])})
        return self._ops(at, action)

    def finish(self) -> list[ScheduledOp]:
        """Stops for every fault still active at the time limit."""
        out = [ScheduledOp(self.time_limit, name, self.fams[name].stop_op, self.fams[name].stop_value(nodes))
               for name, nodes in self.active.items()]
        self.active.clear()
        return out

    def _choose(self, actions: list[tuple]) -> tuple:
        total = sum(self.stats.get(a[:3], [0, 0])[1] for a in actions) + 1
        best, best_score = [], -1.0
        for a in actions:
            s = self.stats.get(a[:3])
            if not s or not s[1]:
                score = math.inf  # untried: try it first
            else:
                score = s[0] + EXPLORE * math.sqrt(math.log(total) / s[1])
            if score > best_score:
                best, best_score = [a], score
            elif score == best_score:
                best.append(a)
        return self.rng.choice(best)

    def _actions(self) -> list[tuple]:
        """(kind, family, shape, draw or None) for everything that could be done now."""
        out: list[tuple] = [("stop", name, "", None) for name in self.active]
        busy = {n for nodes in self.active.values() for n in nodes}
        for name, fam in self.fams.items():
            if name in self.active:
                continue
            for shape, draw in self._shapes(fam, busy).items():
                out.append(("start", name, shape, draw))
                if fam.bounce_chance:
                    out.append(("bounce", name, shape, draw))
        if self.active:
            out.append(HOLD + (None,))
        return out

    def _shapes(self, fam: Any, busy: set[str]) -> dict[str, Any]:
        """One draw per shape of this family's start: a partition's grudge, else how many nodes it hits,
        plus the same aimed at the current leader when the family hits nodes."""
        shapes: dict[str, Any] = {}
        for _ in range(SHAPE_DRAWS):
            draw = fam.draw(self.rng, self.nodes, busy, self.target)
            if draw is None:
                break
            value = draw.value if isinstance(draw.value, dict) else {}
            nodes = value.get("nodes")
            if isinstance(value.get("grudge"), str):
                shape = value["grudge"]
            elif isinstance(nodes, list):
                shape = f"{len(nodes)}-nodes"
            else:
                shape = draw.f
            shapes.setdefault(shape, draw)
            if isinstance(nodes, list) and len(nodes) == 1 and "leader" not in shapes:
                shapes["leader"] = type(draw)(draw.f, {**value, "nodes": [LEADER]}, draw.reserved)
        return shapes

    def _ops(self, at: float, action: tuple) -> list[ScheduledOp]:
        kind, name, _shape, draw = action
        if kind == "hold":
            return []
        fam = self.fams[name]
        if kind == "stop":
            return [ScheduledOp(at, name, fam.stop_op, fam.stop_value(self.active.pop(name)))]
        start = ScheduledOp(at, name, draw.f, draw.value)
        if kind == "bounce":
            back = min(self.rng.choice(BOUNCE_DELAYS), self.interval / 2)
            return [start, ScheduledOp(round(at + back, 3), name, fam.stop_op, fam.stop_value(draw.reserved),
                                       follows=True)]
        self.active[name] = tuple(draw.reserved)
        return [start]
