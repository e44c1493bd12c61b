"""The impostor family: a rogue member of the target's own program, without the cluster key, on the cluster's network.

`start-impostor` starts one rogue beside the members (a container of the
target's image on the run's network, or a local process on loopback),
built by the target (`Target.impostor`, targets/base.py): it claims a
member's id (`claim: n2`, or `member` for a random one) or an id no member
has (`new`), holds a wrong cluster key or none (`key: wrong | none`; or
`stolen`, the run's own key, for an experiment: never drawn, since a rogue
with the key is a member gone bad, which no store is meant to survive), and
campaigns in a term TERM_LEAD ahead of the highest any member reports,
sending the members vote requests and heartbeats on their peer ports.
Verified: the rogue's program runs (it listens on its own peer port), and
from where it runs a TCP connect reaches the peer port of every member that
is up (running or paused). `stop-impostor`
removes it, verified gone; its log's tail goes into the evidence (and, on
Docker, its whole log into the run folder). At most one rogue at a time.

The rogue carries the run's labels, so teardown, the reaper and `splitbrain
clean` remove it with the nodes.

The completion's fault facts name it (`{"impostor": {"id", "member", "term"}}`),
and the split-brain checker then proves that no member followed it: no
member reaches its term, or names it as leader when its id is no member's
(checkers/impostor.py). A store that takes its frames without checking the
key (raftkv's `no-peer-auth`) is caught by that; one that checks them is not
touched. A target without `impostor()` refuses the family before the run.
"""

from __future__ import annotations

import time
from typing import Any

from nemesis.errors import NemesisError, NemesisOpError
from nemesis.family import Draw, FamilyBase, FaultContext
from nemesis.netprobe import probe_addresses
from targets.base import Rogue

TERM_LEAD = 1_000_000  # far beyond what elections reach in any run: a term this high came from the impostor
KEYS = ("wrong", "none", "stolen")
DRAWN_KEYS = ("wrong", "none")  # a schedule never draws "stolen": with the key a rogue is a member gone bad
CLAIMS = ("member", "new")  # or a member's id
NAME = "impostor"  # the rogue's name for the cluster backend (one at a time)
START_WAIT_S = 15.0  # for the rogue to run and reach the members (a container start on a loaded machine)
POLL_S = 0.2
LOG_TAIL_LINES = 12


def new_id(node_ids: list[str]) -> str:
    """An id no member has, shaped like theirs (n4 beside n1..n3)."""
    i = len(node_ids) + 1
    while f"n{i}" in node_ids:
        i += 1
    return f"n{i}"


def target_peer_auth(target: Any) -> str | None:
    fn = getattr(target, "peer_auth", None)
    return fn() if callable(fn) else None


class Impostors:
    """Starts, verifies and removes the rogue of one run (`start`, `stop`)."""

    def __init__(self, ctx: FaultContext, clock=time.monotonic, sleep=time.sleep):
        self.ctx = ctx
        self.c = ctx.cluster
        self.clock, self.sleep = clock, sleep
        self.running: dict[str, Any] | None = None  # the start's value while one runs

    def start(self, op: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if self.running is not None:
            return None, {"note": f"an impostor claiming {self.running['claim']} is already running"}
        if not callable(getattr(self.c, "start_rogue", None)):
            raise NemesisError("impostor: this cluster backend cannot start a rogue node")
        ids = list(self.c.node_ids)
        claim = op["claim"]
        if claim == "member":
            claim = self.ctx.rng.choice(ids)
        elif claim == "new":
            claim = new_id(ids)
        statuses = self.c.probe_all(timeout=0.5)
        top = max((s.get("term") or 0 for s in statuses.values() if s), default=0)
        members = {n: self.c.peer_address(n) for n in ids}
        address = self.c.rogue_address(NAME)
        stolen = op["key"] == "stolen"
        rogue = Rogue(claim, address, members, top + TERM_LEAD, op["key"], self.c.rogue_key_path() if stolen else "")
        plan = self.ctx.target.impostor(rogue)
        t0 = self.clock()
        self.c.start_rogue(NAME, plan.command, with_key=stolen)
        value = {"claim": claim, "member": claim in ids, "term": plan.term, "key": op["key"],
                 "address": f"{address[0]}:{address[1]}", "nodes": []}
        self.running = value
        try:
            reached = self._wait_reaching(members, address)
        except NemesisError:
            self._remove()
            raise
        value["nodes"] = sorted(reached)
        evidence = {"verified": True, "state": "running", "reached": reached,
                    "highest_member_term": top, "after_s": round(self.clock() - t0, 2),
                    "peer_auth": target_peer_auth(self.ctx.target)}
        return value, evidence

    def _wait_reaching(self, members: dict[str, tuple[str, int]], own: tuple[str, int]) -> dict[str, str]:
        """Wait until the rogue's program listens on its own peer address (it is up, not just its
        container) and, from where it runs, every member that is up answers on its peer port;
        node -> what a connect saw ("self": the rogue's own port)."""
        deadline = self.clock() + START_WAIT_S
        while True:
            state = self.c.rogue_state(NAME)
            if state not in ("running", "created"):
                raise NemesisError(f"impostor: the rogue is {state}, not running; its log: {self._tail()[-5:]}")
            up = [n for n, st in self.c.states().items() if st in ("running", "paused")]
            seen: dict[str, str] = {}
            if state == "running":
                addrs = {f"{members[n][0]}:{members[n][1]}": n for n in up}
                addrs[f"{own[0]}:{own[1]}"] = "self"
                try:
                    found = probe_addresses(lambda cmd: self.c.rogue_exec(NAME, cmd), list(addrs), 1.0, "the rogue")
                except Exception as e:  # also Docker's refusal to exec in a rogue that just died: look again
                    found = {a: f"probe failed: {e}"[:120] for a in addrs}
                seen = {addrs[a]: r for a, r in found.items()}
                if up and all(r == "open" for r in seen.values()):
                    seen.pop("self")
                    return seen
            if self.clock() >= deadline:
                raise NemesisError(f"impostor: after {START_WAIT_S:g} s the rogue ({state}) is not listening on its "
                                   f"own peer port or does not reach every member's: {seen or 'no member is up'}")
            self.sleep(POLL_S)

    def _tail(self) -> list[str]:
        return self.c.rogue_log(NAME).strip().splitlines()[-LOG_TAIL_LINES:]

    def _remove(self) -> dict[str, Any]:
        tail = self._tail()
        self.c.remove_rogue(NAME)
        self.running = None
        state = self.c.rogue_state(NAME)
        if state != "missing":
            raise NemesisError(f"impostor: the rogue is still {state} after its removal")
        return {"verified": True, "removed": True, "log_tail": tail}

    def stop(self) -> tuple[Any, dict[str, Any]]:
        if self.running is None:
            return None, {"note": "no impostor was running"}
        value = {"claim": self.running["claim"], "nodes": self.running["nodes"]}
        return value, self._remove()


class _Injector:
    def __init__(self, ctx: FaultContext):
        self.imp = Impostors(ctx)

    def invoke(self, op: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        return self.imp.stop() if op["f"] == "stop-impostor" else self.imp.start(op)

    def current(self) -> list[str]:
        return [f"impostor:{self.imp.running['claim']}"] if self.imp.running else []

    def reapply(self, node: str) -> dict[str, Any] | None:
        return None

    def after_restart(self, nodes: list[str], evidence: dict[str, Any]) -> dict[str, Any]:
        return {}

    def heal(self) -> dict[str, Any]:
        return {"stop-impostor": self.imp.stop()[1]} if self.imp.running else {}


class ImpostorFamily(FamilyBase):
    """A rogue member without the cluster key campaigns in a term far ahead; no member may follow it."""

    name = "impostor"
    ops = ("start-impostor", "stop-impostor")
    heal_rank = 5  # first: the rogue goes before anything else is put back

    def problems(self, cluster, target) -> list[str]:
        if not callable(getattr(target, "impostor", None)):
            return [f"impostor: target {target.name} cannot host an impostor (it has no impostor(); "
                    "see targets/base.py)"]
        return []

    def refuses(self, f, target) -> str | None:
        problems = self.problems(None, target)
        return problems[0] if problems else None

    def validate(self, op, node_ids):
        f = op["f"]
        if f == "stop-impostor":
            return {"f": f}
        value = op.get("value") or {}
        if not isinstance(value, dict):
            raise NemesisOpError(f"{f}: expected {{claim, key}}, got {value!r}")
        claim, key = value.get("claim", "member"), value.get("key", "wrong")
        if claim not in CLAIMS and claim not in node_ids:
            raise NemesisOpError(f"{f}: claim must be member, new or a node id ({', '.join(node_ids)}), "
                                 f"got {claim!r}")
        if key not in KEYS:
            raise NemesisOpError(f"{f}: key must be one of {', '.join(KEYS)}, got {key!r}")
        return {"f": f, "claim": claim, "key": key}

    def injector(self, ctx):
        return _Injector(ctx)

    def draw(self, rng, nodes, busy, target=None):
        # Mostly a member's id: a stranger's own id is refused by membership alone, key or not.
        claim = rng.choice(sorted(nodes)) if rng.random() < 0.75 else "new"
        return Draw("start-impostor", {"claim": claim, "key": DRAWN_KEYS[0] if rng.random() < 0.75 else DRAWN_KEYS[1]})

    def strategy(self, nodes):
        from hypothesis import strategies as st

        return st.fixed_dictionaries({"claim": st.sampled_from([*sorted(nodes), *CLAIMS]),
                                      "key": st.sampled_from(DRAWN_KEYS)})

    def facts(self, f: str, value: Any) -> dict[str, Any]:
        if f != "start-impostor" or not isinstance(value, dict) or not isinstance(value.get("claim"), str):
            return {}
        return {"impostor": {"id": value["claim"], "member": bool(value.get("member")), "term": value.get("term")}}

    def label(self, f, value):
        if f == "start-impostor" and isinstance(value, dict) and "claim" in value:
            return f"impostor as {value['claim']} ({value.get('key', 'wrong')} key)"
        return f

    def describe(self, op):
        value = op.get("value") or {}
        return f"{op['f']} {value.get('claim', '')}".strip() if isinstance(value, dict) else op["f"]


IMPOSTOR = ImpostorFamily()


class StrangerFamily(ImpostorFamily):
    """Impostors that always take an id no member has (`claim: new`).

    For a target where a member's id is enough to be taken for that member
    (etcd without peer TLS: see targets/etcd/README.md), the impostor family's
    member claims break the cluster outright; this asks only whether a
    stranger is kept out. The same ops and injector (only the draw differs);
    a spec names it `nemesis: [nemesis.impostor:STRANGER]`.
    """

    def draw(self, rng, nodes, busy, target=None):
        return Draw("start-impostor", {"claim": "new", "key": DRAWN_KEYS[0] if rng.random() < 0.75 else DRAWN_KEYS[1]})


STRANGER = StrangerFamily()
