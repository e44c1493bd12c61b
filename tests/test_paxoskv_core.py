"""The Multi-Paxos core, message by message: ballots, re-proposing what a quorum accepted, and what
each Paxos rule prevents, shown by turning it off (the deliberate bugs) in a scenario a test routes."""

from __future__ import annotations

import random

from targets.paxoskv import messages as m
from targets.paxoskv.core import LEADER, PaxosCore, ballot_owner, next_ballot
from targets.raftkv.core import CoreConfig

IDS = ("n1", "n2", "n3")


class Disk:
    """What one core handed over to persist (hard state and slots), to restart it from."""

    def __init__(self):
        self.hard_state, self.slots = None, {}

    def take(self, core: PaxosCore) -> None:
        hs = core.take_hard_state()
        if hs is not None:
            self.hard_state = hs
        for e in core.take_unstable()[1]:
            self.slots[e["index"]] = e


class Net:
    """Three cores; messages wait in `queue` until a test delivers them."""

    def __init__(self, bugs: frozenset[str] = frozenset()):
        self.bugs = bugs
        self.disks = {i: Disk() for i in IDS}
        self.cores = {i: self._core(i, None) for i in IDS}
        self.queue: list[dict] = []

    def _core(self, i: str, disk: Disk | None) -> PaxosCore:
        cfg = CoreConfig(id=i, peers=IDS, election_ticks=(15, 30), heartbeat_ticks=5, bugs=self.bugs)
        hs = disk.hard_state if disk else None
        entries = [disk.slots[s] for s in sorted(disk.slots)] if disk else None
        return PaxosCore(cfg, random.Random(i), hard_state=hs, entries=entries)

    def pump(self, i: str) -> None:
        core = self.cores[i]
        core.flush()
        self.disks[i].take(core)  # persisted before anything is sent
        self.queue += core.take_outbox()

    def deliver(self, kind: str, src: str, dst: str) -> int:
        """Deliver every queued message of kind from src to dst; how many."""
        picked = [x for x in self.queue if (x["type"], x["src"], x["dst"]) == (kind, src, dst)]
        self.queue = [x for x in self.queue if x not in picked]
        for x in picked:
            self.cores[dst].step(x)
            self.pump(dst)
        return len(picked)

    def drop(self, dst: str) -> None:
        self.queue = [x for x in self.queue if x["dst"] != dst]

    def campaign(self, i: str) -> None:
        self.cores[i]._campaign()
        self.pump(i)

    def restart(self, i: str) -> None:
        self.drop(i)
        self.cores[i] = self._core(i, self.disks[i])

    def propose(self, i: str, value) -> int:
        slot, _ = self.cores[i].propose(m.OP, {"op": {"f": "put", "key": "k", "value": value}})
        self.pump(i)
        return slot


def value_at(core: PaxosCore, slot: int):
    e = core.log.entry(slot)
    return e["data"]["op"]["value"] if e["kind"] == m.OP else None


def test_ballots_are_owned_one_member_each_and_grow_past_what_was_seen():
    assert [next_ballot(0, i, 3) for i in range(3)] == [1, 2, 3]
    assert next_ballot(7, 0, 3) == 10 and next_ballot(7, 1, 3) == 8 and next_ballot(8, 1, 3) == 11
    assert all(ballot_owner(next_ballot(x, i, 5), tuple("abcde")) == "abcde"[i] for x in range(40) for i in range(5))


def silent_leader(net: Net, i: str) -> None:
    """i has not heard its leader for a minimum takeover timeout: it no longer honours the lease."""
    net.cores[i].election_elapsed = net.cores[i].cfg.election_ticks[0]


def elect_n1(net: Net) -> None:
    net.campaign("n1")
    net.deliver(m.PREPARE, "n1", "n2")
    net.deliver(m.PROMISE, "n2", "n1")
    assert net.cores["n1"].role == LEADER and net.cores["n1"].term == 1


def test_a_new_leader_re_proposes_the_value_a_minority_accepted():
    # n1 leads in ballot 1; its write reaches n2 only, and n1 dies. n3 takes over with n2's promise:
    # n2 may have made the value chosen (n1 + n2 is a quorum), so n3 must propose it again.
    net = Net()
    elect_n1(net)
    net.deliver(m.ACCEPT, "n1", "n2")
    net.deliver(m.ACCEPT, "n1", "n3")
    slot = net.propose("n1", "W")
    net.deliver(m.ACCEPT, "n1", "n2")
    net.drop("n3")
    net.cores["n1"] = None
    silent_leader(net, "n2")
    net.campaign("n3")
    net.deliver(m.PREPARE, "n3", "n2")
    net.deliver(m.PROMISE, "n2", "n3")
    n3 = net.cores["n3"]
    assert n3.role == LEADER and n3.term == 3
    assert value_at(n3, slot) == "W" and n3.log.entry(slot)["ballot"] == 3


def test_ignore_accepted_lets_the_new_leader_choose_a_second_value_in_a_chosen_slot():
    net = Net(frozenset({"ignore-accepted"}))
    elect_n1(net)
    net.deliver(m.ACCEPT, "n1", "n2")
    net.deliver(m.ACCEPT, "n1", "n3")
    slot = net.propose("n1", "W")
    net.deliver(m.ACCEPT, "n1", "n2")
    net.deliver(m.ACCEPTED, "n2", "n1")
    assert net.cores["n1"].commit == slot  # chosen: n1 and n2 accepted W in ballot 1
    net.drop("n3")
    silent_leader(net, "n2")
    net.campaign("n3")
    net.deliver(m.PREPARE, "n3", "n2")
    net.deliver(m.PROMISE, "n2", "n3")
    n3 = net.cores["n3"]
    assert n3.role == LEADER
    assert not n3.log.has(slot)  # n2 reported W, and n3 did not take it
    assert net.propose("n3", "X") == slot  # its own value in the slot where W was chosen
    net.deliver(m.ACCEPT, "n3", "n2")
    net.deliver(m.ACCEPTED, "n2", "n3")
    assert n3.commit == slot and value_at(n3, slot) == "X" and value_at(net.cores["n1"], slot) == "W"


def forgotten_promise(bugs: frozenset[str]) -> Net:
    """n2 promises n1 (ballot 1), then n3 (ballot 3), then restarts; both then propose in slot 1."""
    net = Net(bugs)
    elect_n1(net)
    net.campaign("n3")
    net.deliver(m.PREPARE, "n3", "n2")  # n2 has heard no accept of n1's yet: it is free to promise
    net.deliver(m.PROMISE, "n2", "n3")
    assert net.cores["n3"].role == LEADER and net.cores["n3"].term == 3
    net.restart("n2")
    net.queue = [x for x in net.queue if x["type"] != m.ACCEPT]  # the leaders' first heartbeats are lost
    net.cores["n2"].now = 100  # long enough up to have no lease left to honour
    net.propose("n1", "W")
    net.deliver(m.ACCEPT, "n1", "n2")
    net.deliver(m.ACCEPTED, "n2", "n1")
    net.propose("n3", "X")
    net.deliver(m.ACCEPT, "n3", "n2")
    net.deliver(m.ACCEPTED, "n2", "n3")
    return net


def test_a_restarted_acceptor_keeps_its_promise_and_preempts_the_older_ballot():
    net = forgotten_promise(frozenset())
    n1, n3 = net.cores["n1"], net.cores["n3"]
    assert net.cores["n2"].term == 3
    assert n1.role != LEADER and n1.commit == 0  # preempted: W was never chosen
    assert n3.commit == 1 and value_at(n3, 1) == "X"


def test_promise_not_persisted_lets_two_values_be_chosen_in_one_slot():
    net = forgotten_promise(frozenset({"promise-not-persisted"}))
    n1, n3 = net.cores["n1"], net.cores["n3"]
    assert n1.commit == 1 and n3.commit == 1
    assert (value_at(n1, 1), value_at(n3, 1)) == ("W", "X")


def test_the_correct_lease_expires_and_the_buggy_one_never_does():
    for bugs, still_valid in ((frozenset(), False), (frozenset({"stale-lease-read"}), True)):
        net = Net(bugs)
        elect_n1(net)
        n1 = net.cores["n1"]
        net.deliver(m.ACCEPT, "n1", "n2")
        net.deliver(m.ACCEPTED, "n2", "n1")
        assert n1.lease_valid()
        for _ in range(40):  # isolated: nobody answers for more than the lease
            n1.tick()
            net.pump("n1")
            net.drop("n2")
            net.drop("n3")
        assert n1.lease_valid() is still_valid
        assert (n1.role == LEADER) is still_valid  # the correct leader stepped down (no quorum)
