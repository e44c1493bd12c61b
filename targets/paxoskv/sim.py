"""The deterministic simulator for paxoskv: raftkv's simulator (targets/raftkv/sim.py) running paxoskv nodes.

The network, the faults, the clients, the crash points and the client-visible
checks after the heal (every acknowledged write applied, no failed write
applied, no stale read, convergence, liveness) are raftkv's. The safety
properties checked at every step, in Paxos's terms:

- agreement per slot (raftkv's "state-machine-safety"): no two nodes apply
  different values in one slot;
- one leader per ballot ("election-safety"): no two nodes lead with the
  same ballot;
- one value per (slot, ballot) ("log-matching" here): a proposer proposes
  at most one value in a slot under one ballot, and a re-proposal keeps it;
- leader completeness: a leader that finished phase 1 in ballot b holds, in
  every slot anybody has applied from a ballot below b, the value applied
  there (what P2c guarantees);
- validity: every applied write is one a client sent;
- promise stability ("promise-forgotten"): no node's promised ballot ever
  goes back, across restarts too (Paxos's stable-storage rule).

`python3 -m targets.paxoskv.sim --seed 1 --hunt 200 --bug ignore-accepted`
hunts seeds for a violation, as raftkv's does.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

from targets.paxoskv import messages as m
from targets.paxoskv.node import BUGS, PaxosKVNode, PaxosNodeConfig
from targets.raftkv import sim as raft_sim
from targets.raftkv.sim import Fault, SimConfig, SimResult, Violation, contract_history, summary

# raftkv's fault kinds, less a leadership transfer (paxoskv has none: a takeover is the only change).
FAULT_KINDS = tuple(k for k in raft_sim.FAULT_KINDS if k != "transfer")


class PaxosSimulation(raft_sim.Simulation):
    node_class = PaxosKVNode
    node_config_class = PaxosNodeConfig
    vote_granted_type = m.PROMISE
    # Off, a hunt looks past the forgotten promise itself for what it leads to (agreement, lost writes).
    check_promises = True

    def __init__(self, cfg: SimConfig, seed: int, schedule: Sequence[Fault] = ()):
        self.promise_high: dict[int, int] = {}  # node -> the highest promise it has sent out
        super().__init__(cfg, seed, schedule)

    def _on_heal(self) -> None:
        # The final heal disarms the crash points too: a first-writes window reaching past it would
        # keep killing each new leader for longer each time, and the convergence check would then
        # judge a node the schedule itself kept down until the last moment.
        self.first_writes_until = -1
        self.bounce_after_vote.clear()
        self.bounce_before_send.clear()
        super()._on_heal()

    def _new_client_entry(self, node, entry: dict) -> bool:
        # Not the values a new leader re-proposes from its promises: those are older writes.
        return entry["kind"] == m.OP and entry["term"] == node.core.ballot

    def _check_leader(self, i: int) -> None:
        """After every Ready: one leader per ballot (raftkv's check), and a promise never goes back."""
        super()._check_leader(i)
        node = self.nodes[i]
        if node is None or not self.check_promises:
            return
        high = self.promise_high.get(i, 0)
        if node.core.promised < high:
            self._violation("promise-forgotten", f"{self.ids[i]} has promised {node.core.promised}, "
                            f"after promising {high} (an acceptor must never go back on a promise)")
        self.promise_high[i] = node.core.promised

    def _check_leader_completeness(self, i: int) -> None:
        """A new leader of ballot b holds every value chosen in a ballot below b (P2c's promise).

        Only below b: a leader whose promises were all given before a higher ballot's may win after
        that ballot chose values it never saw (it is preempted at its first accept). A node applies a
        slot accepted in ballot a only once it is chosen in a or earlier, so the applied entry's ballot
        bounds the ballot it was chosen in.
        """
        core = self.nodes[i].core
        for index, (term, _, entry) in self.applied.items():
            if index <= core.log.snap_index or entry.get("ballot", 0) >= core.ballot:
                continue
            if core.log.term_at(index) != term:
                self._violation(
                    "leader-completeness",
                    f"{self.ids[i]} leads ballot {core.ballot} without the value chosen in slot {index} "
                    f"(proposed in ballot {term}, applied from ballot {entry.get('ballot')}); "
                    f"it has {core.log.term_at(index)} there")

    def _check_new_entries(self, i: int, entries: list[dict]) -> None:
        """One value per (slot, proposing ballot): what a node persists there never changes."""
        for e in entries:
            identity = raft_sim._key(e["data"]) + e["kind"]
            seen = self.entry_by_position.setdefault((e["index"], e["term"]), (identity, None))
            if seen[0] != identity:
                self._violation(
                    "log-matching",
                    f"{self.ids[i]} holds {identity} in slot {e['index']} proposed in ballot {e['term']}, "
                    f"where {seen[0]} was proposed")

    def _check_final(self) -> None:
        super()._check_final()
        sent = {e.get("request_id") for e in self.history if e["type"] == "invoke"}
        for index, (_, _, entry) in sorted(self.applied.items()):
            if entry["kind"] == m.OP and entry["data"]["op"].get("request_id") not in sent:
                self._violation("validity", f"slot {index} applied {entry['data']['op']}, which no client sent")


def run(cfg: SimConfig, seed: int, schedule: Sequence[Fault] = ()) -> SimResult:
    """Run one simulation; the same arguments always give the same result."""
    return PaxosSimulation(cfg, seed, list(schedule)).run()


def random_schedule(rng: random.Random, cfg: SimConfig, faults: int,
                    kinds: tuple[str, ...] = FAULT_KINDS) -> list[Fault]:
    return raft_sim.random_schedule(rng, cfg, faults, kinds)


def hunt(cfg: SimConfig, seeds: Sequence[int], faults: int = 15,
         kinds: tuple[str, ...] = FAULT_KINDS) -> SimResult | None:
    """The first seed's run with a violation, or None if every seed passed."""
    for seed in seeds:
        result = run(cfg, seed, random_schedule(random.Random(seed), cfg, faults, kinds))
        if not result.ok:
            return result
    return None


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python3 -m targets.paxoskv.sim",
        description="Run paxoskv nodes in the deterministic simulator under random faults.",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--faults", type=int, default=15, help="faults in the random schedule")
    parser.add_argument("--kinds", default=",".join(FAULT_KINDS), help="fault kinds to draw from")
    parser.add_argument("--duration", type=int, default=3000, help="ms of faults before the heal")
    parser.add_argument("--lease-reads", action="store_true")
    parser.add_argument("--snapshot-every", type=int, default=1000)
    parser.add_argument("--bug", action="append", default=[], choices=sorted(BUGS))
    parser.add_argument("--hunt", type=int, default=1, metavar="N",
                        help="try seeds seed..seed+N-1 and stop at the first violation")
    parser.add_argument("--history", action="store_true",
                        help="print the history as JSON lines in the harness's format")
    args = parser.parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    unknown = set(kinds) - set(FAULT_KINDS) - set(raft_sim.EXTRA_KINDS)
    if unknown:
        parser.error(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}")
    cfg = SimConfig(nodes=args.nodes, bugs=frozenset(args.bug), lease_reads=args.lease_reads,
                    duration=args.duration, snapshot_every=args.snapshot_every)
    result = None
    for seed in range(args.seed, args.seed + max(1, args.hunt)):
        result = run(cfg, seed, random_schedule(random.Random(seed), cfg, args.faults, kinds))
        if not result.ok:
            break
    if args.history:
        for event in contract_history(result.history):
            print(json.dumps(event))
    print(summary(result))
    return 0 if result.ok else 1


__all__ = ["FAULT_KINDS", "Fault", "PaxosSimulation", "SimConfig", "SimResult", "Violation", "hunt", "main",
           "random_schedule", "run"]

if __name__ == "__main__":
    raise SystemExit(main())
