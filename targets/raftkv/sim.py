"""A deterministic simulator for raftkv: N nodes, a lossy network, faults and clients, one seed.

Every node is a real RaftKVNode. Time is simulated milliseconds; the network
delays, drops, duplicates and partitions messages; nodes crash (losing
everything their Ready never told the "disk") and restart from that disk;
clients issue get/put/cas and the simulator records a history. After every
step it checks the Raft safety properties (election safety, log matching,
leader completeness, state machine safety); after the final heal it checks
that a leader is elected and a write commits within a bounded time, that every
acknowledged write survives and that reads are not stale. The same seed and
schedule give the same run, bit for bit.

Membership changes are faults too: the simulator asks the leader (through the
admin request a client would send) to remove a node, add it back as a learner
and promote it, retrying a refused step as the harness's membership nemesis
does; the heal brings back every original voter, and the final checks then
compare only the members of the configuration the cluster committed.
"""

from __future__ import annotations

import heapq
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from targets.raftkv import messages as m
from targets.raftkv.core import LEADER
from targets.raftkv.kvstate import KVState
from targets.raftkv.node import NodeConfig, RaftKVNode, Restored


def split_voters_side(nodes, leader, voters, rng: random.Random) -> list[str]:
    """The leader's side of a split-voters partition (the same rule as nemesis.grudges.split_voters, which
    the node image cannot import): the leader, the smaller half of the voters, every non-voter."""
    others = [v for v in voters if v != leader]
    rng.shuffle(others)
    k = max(0, len(voters) // 2 - (1 if leader in voters else 0))
    return [leader] + others[:k] + [n for n in nodes if n not in voters and n != leader]


@dataclass(frozen=True)
class Fault:
    """One nemesis action at a simulated time; node arguments are indexes (mod N).

    partition (nodes on one side)      isolate (node)          isolate-leader ()
    heal ()                            crash (node)            restart (node)
    bounce (node, ms down)             bounce-leader (ms down)
    pause (node, ms)                   pause-leader (ms)       frozen, then catches up
    slow (src, dst, extra ms)          drop (loss %)           skew (node, tick period %)
    skew-leader (tick period %): skew whoever leads now (a slow clock on a leader)
    transfer (node): the leader, if any, hands over to node
    Membership (asked of the leader, each step retried until it is accepted):
    remove (node)       add-learner (node)       promote (node)
    member-cycle (node, ms): remove node, then after ms add it back as a learner and promote it
    member-cycle-leader (ms): the same for whoever leads now
    split-voters (): the leader, the smaller half of its voters and every node outside its configuration
        on one side, the other voters on the other (nemesis.grudges.split_voters)
    Crash points, armed until they fire:
    bounce-after-vote (node, ms down): dies right after granting a vote
    bounce-before-send (node, ms down): dies, leading, after persisting a client
        entry and before sending anything
    bounce-leader-before-send (ms down): the same, armed in whoever leads now
    bounce-first-writes (ms down, ms window): in the window every new leader dies
        at its first client entry, the k-th staying down k times as long (Figure 8)
    """

    at: int
    kind: str
    args: tuple[int, ...] = ()


@dataclass(frozen=True)
class SimConfig:
    nodes: int = 3
    bugs: frozenset[str] = frozenset()
    lease_reads: bool = False
    duration: int = 3000  # ms of faults and client load before the final heal
    min_delay: int = 1  # ms, per message
    max_delay: int = 15
    duplicate_rate: float = 0.02
    clients: int = 3
    keys: int = 2
    think_time: int = 10  # ms between one client's operations (at most)
    election_timeout: tuple[int, int] = (150, 300)
    heartbeat: int = 50
    tick_ms: int = 10
    request_timeout: int = 1000
    snapshot_every: int = 1000
    liveness_bound: int = 4000  # ms after the heal by which a write must commit
    settle: int = 1500  # ms after that for followers to catch up before the final checks


@dataclass(frozen=True)
class Violation:
    kind: str  # election-safety, log-matching, leader-completeness, state-machine-safety,
    # liveness, divergence, lost-write, failed-write-applied, stale-read
    time: int  # simulated ms
    detail: str


class ViolationFound(Exception):
    def __init__(self, violation: Violation):
        super().__init__(f"{violation.kind} at {violation.time} ms: {violation.detail}")
        self.violation = violation


@dataclass
class SimResult:
    seed: int
    violations: list[Violation]
    history: list[dict]
    leaders_by_term: dict[int, str]
    final_status: list[dict]
    events: int
    recovered_after: int | None  # ms from the final heal until a write committed
    forwards: int = 0  # client requests a node handed to the leader (forward messages sent)
    membership_changes: int = 0  # changes the leader accepted and committed (answered 200)

    @property
    def ok(self) -> bool:
        return not self.violations

    def ops(self, kind: str) -> list[dict]:
        return [e for e in self.history if e["type"] == kind]


class Disk:
    """What one node persisted, exactly as its Readys described it."""

    def __init__(self) -> None:
        self.hard_state: dict | None = None
        self.snapshot: dict | None = None
        self.entries: dict[int, dict] = {}

    def persist(self, rd) -> None:
        if rd.snapshot is not None:
            self.snapshot = _copy(rd.snapshot)
            self.entries = {i: e for i, e in self.entries.items() if i > rd.snapshot["index"]}
        if rd.truncate_from is not None:
            self.entries = {i: e for i, e in self.entries.items() if i < rd.truncate_from}
        for e in rd.entries:
            self.entries[e["index"]] = _copy(e)
        if rd.hard_state is not None:
            self.hard_state = dict(rd.hard_state)

    def restored(self) -> Restored:
        return Restored(
            hard_state=dict(self.hard_state) if self.hard_state else None,
            snapshot=_copy(self.snapshot) if self.snapshot else None,
            entries=[_copy(self.entries[i]) for i in sorted(self.entries)],
        )


def _copy(value):
    # A JSON round trip: what the real transport and disk do, and it proves
    # every message and record is JSON-serialisable.
    return json.loads(json.dumps(value))


def _key(data) -> str:
    return json.dumps(data, sort_keys=True)


@dataclass
class Client:
    process: int
    target: int  # node index it will talk to next
    op_count: int = 0
    busy: bool = False
    retry: dict | None = None  # a write whose outcome was unknown, to send again as is


@dataclass(frozen=True)
class AdminStep:
    """One membership change the simulator is asking for, and what follows it once it is done."""

    action: str
    member: str
    then: tuple[tuple[int, str], ...] = ()  # (ms after this one succeeds, action) for the same member
    tries: int = 40  # refused or unanswered steps are tried again 100 ms later, this many times


ADMIN_RETRY_MS = 100


@dataclass
class InFlight:
    client: Client | None  # None: the liveness probe
    op: dict
    node: int
    invoke_time: int


class Simulation:
    # What it runs; targets/paxoskv/sim.py runs its own node through the same simulation.
    node_class = RaftKVNode
    node_config_class = NodeConfig
    vote_granted_type = "vote_resp"  # the message whose granting bounce-after-vote waits for

    def __init__(self, cfg: SimConfig, seed: int, schedule: Sequence[Fault] = ()):
        self.cfg = cfg
        self.seed = seed
        self.rng = random.Random(seed)
        self.schedule = sorted(schedule, key=lambda f: f.at)
        self.ids = tuple(f"n{i + 1}" for i in range(cfg.nodes))
        self.disks = [Disk() for _ in self.ids]
        self.nodes: list[RaftKVNode | None] = [None] * cfg.nodes
        self.incarnation = [0] * cfg.nodes
        self.tick_period = [cfg.tick_ms] * cfg.nodes
        # A paused node (SIGSTOP, a long GC) runs nothing: its ticks pile up and
        # its inbound messages wait in the kernel until it resumes.
        self.paused_until = [-1] * cfg.nodes
        self.missed_ticks = [0] * cfg.nodes
        self.blocked: set[tuple[int, int]] = set()
        self.slow: dict[tuple[int, int], int] = {}  # (src, dst) -> extra ms on that link
        self.bounce_after_vote: dict[int, int] = {}  # node -> ms down, armed crash point
        self.bounce_before_send: dict[int, int] = {}  # node -> ms down, armed crash point
        # "bounce-first-writes": until this time every new leader dies at its first
        # client entry; the k-th such death keeps the node down k * first_write_down ms.
        self.first_writes_until = -1
        self.first_write_down = 0
        self.first_write_terms: set[int] = set()
        self.drop_rate = 0.0
        self.forwards = 0
        # Membership changes in flight: handle -> AdminStep; and how many were answered 200.
        self.admin: dict[int, AdminStep] = {}
        self.membership_changes = 0
        self.now = 0
        self.queue: list[tuple] = []
        self.seq = 0
        self.events = 0
        # Invariant bookkeeping.
        self.leaders_by_term: dict[int, str] = {}
        self.entry_by_position: dict[tuple[int, int], tuple[str, int | None]] = {}
        self.applied: dict[int, tuple[int, str, dict]] = {}  # index -> (term, data key, entry)
        # Clients and history.
        self.history: list[dict] = []
        self.next_process = 0
        self.next_value = 0
        self.next_handle = 0
        self.inflight: dict[int, InFlight] = {}
        self.clients: list[Client] = []
        self.probe_done_at: int | None = None
        self.probe_busy = False
        self.probe_process = "probe-0"
        self.healed = False
        for i in range(cfg.nodes):
            self._start_node(i)

    # ---- the event loop ------------------------------------------------------

    def _at(self, time: int, kind: str, *payload) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (time, self.seq, kind, payload))

    def run(self) -> SimResult:
        cfg = self.cfg
        violations: list[Violation] = []
        for fault in self.schedule:
            if fault.at < cfg.duration:
                self._at(fault.at, "fault", fault)
        for _ in range(cfg.clients):
            client = Client(self._new_process(), self.rng.randrange(cfg.nodes))
            self.clients.append(client)
            self._at(self.rng.randrange(cfg.think_time + 1), "client", client)
        self._at(cfg.duration, "heal")
        deadline = cfg.duration + cfg.liveness_bound
        try:
            while self.queue:
                time, _, kind, payload = heapq.heappop(self.queue)
                if self.probe_done_at is not None and time > self.probe_done_at + cfg.settle:
                    break
                if time > deadline and self.probe_done_at is None:
                    raise ViolationFound(Violation(
                        "liveness", deadline,
                        f"no write committed within {cfg.liveness_bound} ms of healing; "
                        f"status {self._status()}"))
                self.now = time
                self.events += 1
                getattr(self, "_on_" + kind)(*payload)
            self._check_final()
        except ViolationFound as found:
            violations.append(found.violation)
        recovered = None if self.probe_done_at is None else self.probe_done_at - cfg.duration
        return SimResult(self.seed, violations, self.history, dict(self.leaders_by_term),
                         self._status(), self.events, recovered, self.forwards, self.membership_changes)

    def _status(self) -> list[dict]:
        return [n.status() if n else {"id": self.ids[i], "role": "down"} for i, n in enumerate(self.nodes)]

    # ---- nodes ----------------------------------------------------------------

    def _start_node(self, i: int) -> None:
        cfg = self.cfg
        self.incarnation[i] += 1
        self.paused_until[i], self.missed_ticks[i] = -1, 0
        node = self.node_class(
            self.node_config_class(
                id=self.ids[i],
                peers=self.ids,
                election_timeout=cfg.election_timeout,
                heartbeat=cfg.heartbeat,
                tick_ms=cfg.tick_ms,
                lease_reads=cfg.lease_reads,
                bugs=cfg.bugs,
                snapshot_every=cfg.snapshot_every,
                request_timeout=cfg.request_timeout,
            ),
            self.disks[i].restored(),
            random.Random(f"{self.seed}/{i}/{self.incarnation[i]}"),
        )
        node.apply_observer = lambda entry, i=i: self._observe_apply(i, entry)
        self.nodes[i] = node
        self._drain(i)
        self._at(self.now + self.rng.randint(1, self.tick_period[i]), "tick", i, self.incarnation[i])

    def _on_tick(self, i: int, incarnation: int) -> None:
        node = self.nodes[i]
        if node is None or incarnation != self.incarnation[i]:
            return
        self._at(self.now + self.tick_period[i], "tick", i, incarnation)
        if self.now < self.paused_until[i]:
            self.missed_ticks[i] += 1
            return
        node.tick()
        self._drain(i)

    def _on_resume(self, i: int, incarnation: int) -> None:
        node = self.nodes[i]
        if node is None or incarnation != self.incarnation[i] or self.paused_until[i] < 0:
            return
        self.paused_until[i] = -1
        # Like the server's loop after SIGCONT: first catch up on the time that
        # passed, then handle what arrived meanwhile (delivered after this event).
        for _ in range(self.missed_ticks[i]):
            node.tick()
        self.missed_ticks[i] = 0
        self._drain(i)

    def _on_deliver(self, src: int, dst: int, msg: dict, incarnation: int | None = None) -> None:
        node = self.nodes[dst]
        if node is None or (src, dst) in self.blocked:
            return
        if incarnation is not None and incarnation != self.incarnation[dst]:
            return  # a forward's TCP connection died with the process it was sent to
        if self.now < self.paused_until[dst]:
            self._at(self.paused_until[dst], "deliver", src, dst, msg, incarnation)
            return
        node.receive(msg)
        self._drain(dst)

    def _drain(self, i: int) -> None:
        """Handle node i's Ready: check it, persist it, then send and reply, then advance."""
        node = self.nodes[i]
        rd = node.ready()
        if rd.is_empty:
            self._check_leader(i)
            return
        self._check_new_entries(i, rd.entries)
        self.disks[i].persist(rd)
        if node.core.role == LEADER and any(self._new_client_entry(node, e) for e in rd.entries):
            # A crash point: a leader dies after writing a client's entry to its
            # disk but before anything leaves the machine.
            down = self.bounce_before_send.pop(i, None)
            term = node.core.term
            if down is None and self.now < self.first_writes_until and term not in self.first_write_terms:
                self.first_write_terms.add(term)
                down = self.first_write_down * len(self.first_write_terms)
            if down is not None:
                self._on_fault(Fault(self.now, "bounce", (i, down)))
                return
        for msg in rd.messages:
            self.forwards += msg["type"] == m.FORWARD
            if self.rng.random() < self.drop_rate:
                continue
            dst = self.ids.index(msg["dst"])
            copies = 2 if self.rng.random() < self.cfg.duplicate_rate else 1
            # Raft messages may reach a later life of their receiver (the simulator is harsher
            # than TCP there); forwarding relies on the transport's rule that they cannot.
            incarnation = self.incarnation[dst] if msg["type"] in m.FORWARDING else None
            for _ in range(copies):
                delay = self._delay() + self.slow.get((i, dst), 0)
                self._at(self.now + delay, "deliver", i, dst, _copy(msg), incarnation)
        for handle, status, body in rd.replies:
            self._at(self.now + self._delay(), "reply", handle, status, _copy(body))
        node.advance(rd)
        self._check_leader(i)
        if i in self.bounce_after_vote and any(
            msg["type"] == self.vote_granted_type and msg["granted"] for msg in rd.messages
        ):
            # A crash point: the node dies right after its vote is on disk and sent.
            self._on_fault(Fault(self.now, "bounce", (i, self.bounce_after_vote.pop(i))))

    def _new_client_entry(self, node, entry: dict) -> bool:
        """Is entry, in a leader's Ready, a client write it has just appended (the crash points' cue)?"""
        return entry["kind"] == "op"

    def _delay(self) -> int:
        return self.rng.randint(self.cfg.min_delay, self.cfg.max_delay)

    # ---- faults -----------------------------------------------------------------

    def _on_fault(self, fault: Fault) -> None:
        n = self.cfg.nodes
        kind, args = fault.kind, fault.args
        if kind in ("partition", "isolate"):
            side = {a % n for a in args}
            self.blocked = {(a, b) for a in range(n) for b in range(n) if (a in side) != (b in side)}
        elif kind == "heal":
            self.blocked = set()
            self.slow = {}
        elif kind == "slow":
            self.slow[(args[0] % n, args[1] % n)] = args[2]
        elif kind == "crash":
            self._crash(args[0] % n)
        elif kind == "bounce":
            # kill -9 and start again a moment later: loses exactly what was not persisted
            i = args[0] % n
            self._crash(i)
            self._at(self.now + (args[1] if len(args) > 1 else 1), "fault", Fault(self.now, "restart", (i,)))
        elif kind == "bounce-after-vote":
            self.bounce_after_vote[args[0] % n] = args[1] if len(args) > 1 else 1
        elif kind == "bounce-first-writes":
            self.first_write_down, self.first_writes_until = args[0], self.now + args[1]
        elif kind == "bounce-before-send":
            self.bounce_before_send[args[0] % n] = args[1] if len(args) > 1 else 1
        elif kind == "pause":
            i = args[0] % n
            if self.nodes[i] is not None and self.paused_until[i] < 0:
                self.paused_until[i] = self.now + args[1]
                self._at(self.paused_until[i], "resume", i, self.incarnation[i])
        elif kind in ("isolate-leader", "bounce-leader", "bounce-leader-before-send", "pause-leader", "skew-leader"):
            leaders = [i for i, node in enumerate(self.nodes) if node is not None and node.core.role == LEADER]
            if leaders and kind == "skew-leader":
                self._on_fault(Fault(self.now, "skew", (leaders[0], args[0] if args else 200)))
            elif leaders and kind == "pause-leader":
                self._on_fault(Fault(self.now, "pause", (leaders[0], args[0] if args else 500)))
            elif leaders and kind == "isolate-leader":
                self._on_fault(Fault(self.now, "isolate", (leaders[0],)))
            elif leaders and kind == "bounce-leader":
                self._on_fault(Fault(self.now, "bounce", (leaders[0], args[0] if args else 1)))
            elif leaders:
                self.bounce_before_send[leaders[0]] = args[0] if args else 1
        elif kind == "restart":
            i = args[0] % n
            if self.nodes[i] is None:
                self._start_node(i)
        elif kind == "drop":
            self.drop_rate = min(args[0], 100) / 100
        elif kind == "transfer":
            for i, node in enumerate(self.nodes):
                if node is not None and node.core.role == LEADER:
                    node.transfer_leadership(self.ids[args[0] % n])
                    self._drain(i)
        elif kind == "skew":
            self.tick_period[args[0] % n] = max(1, self.cfg.tick_ms * args[1] // 100)
        elif kind == "split-voters":
            leader = self._leader()
            if leader is not None:
                conf = self.nodes[leader].core.membership
                side = split_voters_side(self.ids, self.ids[leader], conf.voters, self.rng)
                self._on_fault(Fault(self.now, "partition", tuple(self.ids.index(x) for x in side)))
        elif kind in ("remove", "add-learner", "promote"):
            self._admin(AdminStep(kind, self.ids[args[0] % n]))
        elif kind in ("member-cycle", "member-cycle-leader"):
            if kind == "member-cycle":
                who, gap = self.ids[args[0] % n], args[1] if len(args) > 1 else 500
            else:
                leader = self._leader()
                if leader is None:
                    return
                who, gap = self.ids[leader], args[0] if args else 500
            self._admin(AdminStep("remove", who, ((gap, "add-learner"), (0, "promote"))))
        else:
            raise ValueError(f"unknown fault kind {kind!r}")

    # ---- membership changes ----------------------------------------------------------

    def _leader(self) -> int | None:
        """The node leading in the highest term, if any."""
        leaders = [(n.core.term, i) for i, n in enumerate(self.nodes) if n is not None and n.core.role == LEADER]
        return max(leaders)[1] if leaders else None

    def _admin(self, step: AdminStep) -> None:
        """Send one membership change to the leader (or, knowing none, to some live node, which forwards it)."""
        target = self._leader()
        if target is None:
            alive = [i for i, node in enumerate(self.nodes) if node is not None]
            if not alive:
                self._admin_retry(step)
                return
            target = self.rng.choice(alive)
        self.next_handle += 1
        handle = self.next_handle
        self.admin[handle] = step
        self._at(self.now + self.cfg.request_timeout + 2 * self.cfg.max_delay, "admin_deadline", handle)
        node = self.nodes[target]
        if self.now < self.paused_until[target]:
            return  # frozen: the deadline retries it elsewhere
        node.client_request(handle, {"f": "membership", "action": step.action, "member": step.member})
        self._drain(target)

    def _admin_retry(self, step: AdminStep) -> None:
        if step.tries > 0:
            again = AdminStep(step.action, step.member, step.then, step.tries - 1)
            self._at(self.now + ADMIN_RETRY_MS, "admin_step", again)

    def _on_admin_step(self, step: AdminStep) -> None:
        self._admin(step)

    def _on_admin_deadline(self, handle: int) -> None:
        step = self.admin.pop(handle, None)
        if step is not None:
            self._admin_retry(step)  # unanswered (its node crashed or froze): ask again

    def _on_admin_reply(self, handle: int, status: int, body: dict) -> None:
        step = self.admin.pop(handle, None)
        if step is None:
            return
        if status == 409 and step.action == "add-learner" and body.get("error") == "already-a-voter":
            return  # nothing to take back
        if status != 200:
            self._admin_retry(step)
            return
        if not body.get("unchanged"):
            self.membership_changes += 1
        if step.then:
            (gap, action), rest = step.then[0], step.then[1:]
            self._at(self.now + gap, "admin_step", AdminStep(action, step.member, rest))

    def _restore_membership(self) -> None:
        """At the heal: ask for every original voter back (as a learner, then promoted)."""
        self.admin = {}  # what was in flight is superseded
        for member in self.ids:
            self._admin(AdminStep("add-learner", member, ((0, "promote"),)))

    def _crash(self, i: int) -> None:
        if self.nodes[i] is None:
            return
        self.nodes[i] = None
        # The crashed node's open client connections break: outcome unknown.
        for handle, flight in list(self.inflight.items()):
            if flight.node == i:
                self._complete(handle, "info", None, "connection lost")
        # Its peer connections close too: each peer it can reach sees that after everything the link
        # still carried (TCP's order), so at the longest delay. No random draw, so that a schedule's
        # other draws are what they were before closes were modelled.
        for j in range(self.cfg.nodes):
            if j != i and self.nodes[j] is not None:
                self._at(self.now + self.cfg.max_delay, "link_lost", i, j, self.incarnation[j])

    def _on_link_lost(self, src: int, dst: int, incarnation: int) -> None:
        node = self.nodes[dst]
        if node is None or incarnation != self.incarnation[dst] or (src, dst) in self.blocked:
            return  # a partition between them swallows the close, as it does a message
        if self.now < self.paused_until[dst]:
            self._at(self.paused_until[dst], "link_lost", src, dst, incarnation)
            return
        node.link_lost(self.ids[src])
        self._drain(dst)

    def _on_heal(self) -> None:
        self.healed = True
        self.blocked = set()
        self.slow = {}
        self.drop_rate = 0.0
        self.tick_period = [self.cfg.tick_ms] * self.cfg.nodes
        for i, node in enumerate(self.nodes):
            if node is None:
                self._start_node(i)
            elif self.paused_until[i] > self.now:
                self.paused_until[i] = self.now
                self._on_resume(i, self.incarnation[i])
        self._at(self.now, "probe")
        self._at(self.now + ADMIN_RETRY_MS, "restore_membership")

    def _on_restore_membership(self) -> None:
        self._restore_membership()

    # ---- clients ------------------------------------------------------------------

    def _new_process(self) -> int:
        self.next_process += 1
        return self.next_process - 1

    def _fresh_value(self) -> int:
        self.next_value += 1
        return self.next_value

    def _on_client(self, client: Client) -> None:
        if self.healed or client.busy:
            return
        if client.retry is not None:
            # The same request id again: the store must apply it at most once.
            op, client.retry = client.retry, None
            client.busy = True
            self._invoke(client, op, client.target)
            return
        key = f"k{self.rng.randrange(self.cfg.keys)}"
        roll = self.rng.random()
        if roll < 0.5:
            op = {"f": "get", "key": key}
        elif roll < 0.85:
            op = {"f": "put", "key": key, "value": self._fresh_value()}
        else:
            op = {"f": "cas", "key": key, "from": self._recent_value(key), "to": self._fresh_value()}
        if op["f"] != "get":
            op["request_id"] = f"p{client.process}-{client.op_count}"
        client.op_count += 1
        client.busy = True
        self._invoke(client, op, client.target)

    def _recent_value(self, key: str):
        for e in reversed(self.history):
            if e["key"] == key and e["type"] == "ok":
                return e["value"] if e["f"] != "cas" else e["value"][1]
        return None

    def _invoke(self, client: Client | None, op: dict, target: int) -> None:
        self.next_handle += 1
        handle = self.next_handle
        self.inflight[handle] = InFlight(client, op, target, self.now)
        self._record("invoke", client, op, None, target)
        self._at(self.now + self._delay(), "request", handle)

    def _on_request(self, handle: int) -> None:
        flight = self.inflight.get(handle)
        if flight is None:
            return
        node = self.nodes[flight.node]
        if node is None:
            self._complete(handle, "fail", None, "connection refused")
            return
        if self.now < self.paused_until[flight.node]:
            self._at(self.paused_until[flight.node], "request", handle)
            return
        node.client_request(handle, dict(flight.op))
        self._drain(flight.node)

    def _on_reply(self, handle: int, status: int, body: dict) -> None:
        if handle in self.admin:
            self._on_admin_reply(handle, status, body)
            return
        flight = self.inflight.get(handle)
        if flight is None:
            return
        if flight.client is not None and status == 503 and body.get("leader") in self.ids:
            flight.client.target = self.ids.index(body["leader"])
        elif flight.client is not None and status in (503, 504):
            flight.client.target = self.rng.randrange(self.cfg.nodes)
        if status == 200:
            self._complete(handle, "ok", body.get("value"), None)
        elif status == 404:
            self._complete(handle, "ok", None, None)
        elif status in (409, 503, 400):
            self._complete(handle, "fail", None, body.get("error"))
        else:
            self._complete(handle, "info", None, body.get("error"))

    def _complete(self, handle: int, kind: str, read_value, error: str | None) -> None:
        flight = self.inflight.pop(handle)
        op = flight.op
        value = read_value if op["f"] == "get" else None
        self._record(kind, flight.client, op, value, flight.node, error, flight.invoke_time)
        client = flight.client
        if client is None:
            self.probe_busy = False
            if kind == "info":  # like any client: an unknown outcome retires the process
                self.probe_process = f"probe-{int(self.probe_process[6:]) + 1}"
            if kind == "ok":
                self.probe_done_at = self.now
            else:
                self._at(self.now + 50, "probe")
            return
        client.busy = False
        if error in ("connection refused", "connection lost", "timeout"):
            client.target = self.rng.randrange(self.cfg.nodes)  # try somebody else
        if kind == "info":
            client.process = self._new_process()  # Jepsen: an indefinite op retires its process
            if op["f"] != "get" and self.rng.random() < 0.5:
                client.retry = op
        self._at(self.now + self.rng.randint(0, self.cfg.think_time), "client", client)

    def _record(self, kind, client, op, read_value, node, error=None, invoke_time=None) -> None:
        event = {
            "index": len(self.history),
            "type": kind,
            "process": client.process if client else self.probe_process,
            "f": op["f"],
            "key": op["key"],
            "value": read_value if op["f"] == "get" else (
                op["value"] if op["f"] == "put" else [op["from"], op["to"]]),
            "time": self.now,
            "node": self.ids[node],
        }
        if op.get("request_id"):
            event["request_id"] = op["request_id"]
        if invoke_time is not None:
            event["invoke_time"] = invoke_time
        if error:
            event["error"] = error
        self.history.append(event)

    def _on_probe(self) -> None:
        """After the heal: keep submitting one write until one commits."""
        if self.probe_done_at is not None or self.probe_busy:
            return
        leaders = [i for i, n in enumerate(self.nodes) if n is not None and n.core.role == LEADER]
        if not leaders:
            self._at(self.now + 50, "probe")
            return
        self.probe_busy = True
        op = {"f": "put", "key": "probe", "value": self._fresh_value(), "request_id": f"probe-{self.now}"}
        self._invoke(None, op, leaders[0])

    # ---- safety invariants, checked at every step --------------------------------

    def _violation(self, kind: str, detail: str) -> None:
        raise ViolationFound(Violation(kind, self.now, detail))

    def _check_leader(self, i: int) -> None:
        node = self.nodes[i]
        if node is None or node.core.role != LEADER:
            return
        term, me = node.core.term, self.ids[i]
        seen = self.leaders_by_term.get(term)
        if seen is None:
            self.leaders_by_term[term] = me
            self._check_leader_completeness(i)
        elif seen != me:
            self._violation("election-safety", f"both {seen} and {me} became leader in term {term}")

    def _check_leader_completeness(self, i: int) -> None:
        """A new leader's log holds every entry anybody has applied (committed earlier)."""
        log = self.nodes[i].core.log
        for index, (term, _, _) in self.applied.items():
            if index < log.snap_index:
                continue
            if log.term_at(index) != term:
                self._violation(
                    "leader-completeness",
                    f"{self.ids[i]} leads term {self.nodes[i].core.term} without committed "
                    f"entry {index} (term {term}); it has term {log.term_at(index)} there")

    def _check_new_entries(self, i: int, entries: list[dict]) -> None:
        """Log matching: one (index, term) position always holds the same entry after the same term."""
        log = self.nodes[i].core.log
        for e in entries:
            position = (e["index"], e["term"])
            identity = (_key(e["data"]) + e["kind"], log.term_at(e["index"] - 1))
            seen = self.entry_by_position.setdefault(position, identity)
            if seen[0] != identity[0] or (None not in (seen[1], identity[1]) and seen[1] != identity[1]):
                self._violation(
                    "log-matching",
                    f"{self.ids[i]} holds a different entry at index {e['index']} term {e['term']}: "
                    f"{identity} vs {seen}")

    def _observe_apply(self, i: int, entry: dict) -> None:
        index = entry["index"]
        seen = self.applied.get(index)
        if entry["kind"] == "snapshot":
            if seen is not None and seen[0] != entry["term"]:
                self._violation(
                    "state-machine-safety",
                    f"{self.ids[i]} installed a snapshot at {index} term {entry['term']} "
                    f"but term {seen[0]} was applied there")
            return
        key = _key(entry["data"]) + entry["kind"]
        if seen is None:
            self.applied[index] = (entry["term"], key, entry)
        elif (seen[0], seen[1]) != (entry["term"], key):
            self._violation(
                "state-machine-safety",
                f"{self.ids[i]} applied {entry} at index {index}, another node applied {seen[2]}")

    # ---- client-visible checks, after the run -----------------------------------

    def _check_convergence(self) -> None:
        """After the heal and the settle time, every member of the committed configuration has applied the same
        state (a node the cluster removed and has not taken back stops where it was removed)."""
        nodes = [n for n in self.nodes if n is not None]
        if nodes:
            ahead = max(nodes, key=lambda n: n.core.commit)
            members = ahead.core.membership_at(ahead.core.commit).members
            nodes = [n for n in nodes if n.config.id in members]
        states = {(n.applied, _key(n.kv.to_json())) for n in nodes}
        if len(states) > 1:
            self._violation("divergence", "nodes hold different state after healing: "
                            + str([(n.config.id, n.applied) for n in nodes]))

    def _check_final(self) -> None:
        """Every acknowledged write was applied, no write that failed took effect, and no read
        returned an overwritten value.

        The order of writes is the order the cluster applied them, which the
        simulator can see: stricter than linearizability of the client history
        alone (a bug that acknowledges early can leave a history that is still
        linearizable but contradicts what the cluster actually did).
        """
        self._check_convergence()
        writes = {}  # request_id -> apply index of its first application
        took_effect = set()  # request ids whose first application changed the state
        value_index = {}  # (key, value) -> index of the write that stored it
        state = KVState()
        for index in sorted(self.applied):
            term, _, entry = self.applied[index]
            if entry["kind"] != "op":
                continue
            op = entry["data"]["op"]
            rid = op.get("request_id")
            first = rid is None or rid not in state.dedupe
            outcome = state.apply(op)
            if first and rid is not None:
                writes[rid] = index
            if first and outcome.status == 200:
                value = op["value"] if op["f"] == "put" else op["to"]
                value_index[(op["key"], value)] = index
                took_effect.add(rid)
        oks = [e for e in self.history if e["type"] == "ok"]
        for e in oks:
            if e["f"] != "get" and e.get("request_id") not in writes:
                self._violation("lost-write", f"acknowledged {e['f']} {e['request_id']} "
                                f"{e['key']}={e['value']} was never applied")
        # A fail must mean "certainly did not happen" (a retried request id may have
        # happened through another attempt, so only ids sent once are judged).
        sent = Counter(e.get("request_id") for e in self.history if e["type"] == "invoke")
        for e in self.history:
            if e["type"] == "fail" and sent[e.get("request_id")] == 1 and e.get("request_id") in took_effect:
                self._violation("failed-write-applied", f"{e['f']} {e['request_id']} {e['key']}={e['value']} "
                                f"failed ({e.get('error')}) on {e['node']} but was applied")
        # What each acknowledged operation proves about the key's state: a write
        # stored its value at some index; a read saw the value stored at some
        # index (0: the key was absent). Once an operation completed, every
        # read that starts later must see that index or a later one.
        seen: dict[str, list[tuple[int, int, dict]]] = {}  # key -> (complete time, index, op)
        reads = []
        for e in oks:
            if e["f"] == "get":
                got = 0 if e["value"] is None else value_index.get((e["key"], e["value"]))
                if got is None:
                    self._violation("stale-read", f"read {e} returned a value no write stored")
                reads.append((e, got))
            else:
                value = e["value"] if e["f"] == "put" else e["value"][1]
                got = value_index.get((e["key"], value)) or 0
            seen.setdefault(e["key"], []).append((e["time"], got, e))
        for observations in seen.values():
            observations.sort(key=lambda o: o[0])
        for read, got in reads:
            for done, index, op in seen[read["key"]]:
                if done >= read["invoke_time"]:
                    break
                if index > got:
                    self._violation(
                        "stale-read",
                        f"read of {read['key']} at {read['invoke_time']}-{read['time']} ms on "
                        f"{read['node']} returned {read['value']!r} although {op['f']} of "
                        f"{op['value']!r} (index {index}) completed at {done} ms")


def run(cfg: SimConfig, seed: int, schedule: Sequence[Fault] = ()) -> SimResult:
    """Run one simulation; the same arguments always give the same result."""
    return Simulation(cfg, seed, list(schedule)).run()


FAULT_KINDS = ("partition", "isolate", "isolate-leader", "heal", "crash", "restart", "bounce",
               "bounce-leader", "bounce-leader-before-send", "bounce-first-writes", "pause",
               "pause-leader",
               "slow", "drop", "transfer", "skew", "bounce-after-vote", "bounce-before-send")
# Drawn only when asked for (--kinds), so that every seed's default schedule stays what it was.
EXTRA_KINDS = ("skew-leader", "remove", "add-learner", "promote", "member-cycle", "member-cycle-leader",
               "split-voters")


def random_schedule(
    rng: random.Random,
    cfg: SimConfig,
    faults: int,
    kinds: tuple[str, ...] = FAULT_KINDS,
    skews: tuple[int, ...] = (50, 80, 100, 150),
) -> list[Fault]:
    """A seeded mix of faults of the given kinds, at random times before cfg.duration."""
    out = []
    n = cfg.nodes
    for _ in range(faults):
        at = rng.randrange(cfg.duration)
        kind = rng.choice(kinds)
        if kind == "partition":
            args = tuple(rng.sample(range(n), rng.randint(1, n // 2)))
        elif kind in ("isolate", "crash", "restart", "transfer", "remove", "add-learner", "promote"):
            args = (rng.randrange(n),)
        elif kind == "member-cycle":
            args = (rng.randrange(n), rng.choice([100, 300, 600, 1000]))
        elif kind == "member-cycle-leader":
            args = (rng.choice([100, 300, 600, 1000]),)
        elif kind in ("bounce", "bounce-after-vote", "bounce-before-send"):
            args = (rng.randrange(n), rng.randint(1, 40))
        elif kind in ("bounce-leader", "bounce-leader-before-send"):
            args = (rng.randint(1, 100),)
        elif kind == "bounce-first-writes":
            args = (rng.choice([100, 200, 300]), rng.choice([500, 1000, 2000]))
        elif kind == "pause":
            args = (rng.randrange(n), rng.choice([50, 200, 500, 1000]))
        elif kind == "pause-leader":
            args = (rng.choice([50, 200, 500, 1000]),)
        elif kind == "drop":
            args = (rng.choice([0, 5, 20, 50]),)
        elif kind == "slow":
            args = (rng.randrange(n), rng.randrange(n), rng.choice([0, 50, 100, 200]))
        elif kind == "skew":
            args = (rng.randrange(n), rng.choice(skews))
        elif kind == "skew-leader":
            args = (rng.choice(skews),)
        else:
            args = ()
        out.append(Fault(at, kind, args))
    return out


# The harness's register workload names operations read / write / cas.
CONTRACT_F = {"get": "read", "put": "write", "cas": "cas"}


def contract_history(history: list[dict]) -> list[dict]:
    """The history as the harness writes it (DESIGN.md): register op names, times in ns."""
    out = []
    for e in history:
        d = {k: v for k, v in e.items() if k != "invoke_time"}
        d["f"] = CONTRACT_F[e["f"]]
        d["time"] = e["time"] * 1_000_000
        out.append(d)
    return out


def summary(result: SimResult) -> str:
    """A few lines a person reads after a run."""
    kinds = {k: sum(1 for e in result.history if e["type"] == k) for k in ("ok", "fail", "info")}
    lines = [
        f"seed {result.seed}: {result.events} events, {len(result.leaders_by_term)} terms with a leader, "
        f"ops ok={kinds['ok']} fail={kinds['fail']} info={kinds['info']}, {result.forwards} forwarded, "
        f"{result.membership_changes} membership changes",
        "recovered after heal: "
        + ("never" if result.recovered_after is None else f"{result.recovered_after} ms"),
    ]
    for s in result.final_status:
        lines.append(f"  {s}")
    for v in result.violations:
        lines.append(f"VIOLATION {v.kind} at {v.time} ms: {v.detail}")
    if not result.violations:
        lines.append("all safety and client-visible checks passed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from targets.raftkv.node import BUGS

    parser = argparse.ArgumentParser(
        prog="python3 -m targets.raftkv.sim",
        description="Run raftkv nodes in the deterministic simulator under random faults.",
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
    unknown = set(kinds) - set(FAULT_KINDS) - set(EXTRA_KINDS)
    if unknown:
        parser.error(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(FAULT_KINDS + EXTRA_KINDS)}")
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


if __name__ == "__main__":
    raise SystemExit(main())
