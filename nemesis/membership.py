"""The membership family: voters removed from the cluster's configuration and taken back during a run.

`remove-member` asks the cluster (its leader, through the target's admin API,
`Target.membership`) to remove one voter; `readd-member` takes it back, as a
learner first and then, once it has caught up, promoted to voter; `add-learner`
and `promote-member` are those two steps alone, for hand-written schedules;
`cycle-member` does all three in one op (`CYCLES` draws it).
The seeded schedule starts the family with a removal (of a random voter, or of
the current leader) and stops it with the re-addition. A change refused for
now (no leader, another change still committing, a learner that has not
caught up) is asked again until CHANGE_WAIT_S; a removal that still cannot be
made (a partition left no majority) is recorded as such, with nothing hit.

Verified: the leader answers a change only once its entry committed, and then
the members' own `GET /membership` views are polled until a majority of the new
voters report the new configuration; the evidence holds each node's view. A
change answered 200 that no majority holds within VERIFY_WAIT_S is the store's
doing (a leader that miscounts its quorum commits with a minority), not a fault
that failed to take effect: it is recorded (`"verified": false`, with every
view), not raised, so the run goes on to the checkers.
Never below MIN_VOTERS voters. The heal takes back every node of the first
configuration seen (all nodes) and checks that every node then reports it,
with no learner left. A store that cannot make the change (no leader, or a
change that never commits, as a store that miscounts its quorum can end up)
does not stop the run: that is the store's behaviour, not the harness's, and
the history still goes to the checkers; the heal's evidence then says
`"verified": false` and which nodes were not taken back. (A first run of
suites/membership.yaml's stale-majority row lost its anomaly to an exit 2 here.)

A target declares the admin API by having `membership()`; a target without it
refuses the family before anything starts (`FamilyBase.requires`).
"""

from __future__ import annotations

import time
from typing import Any

from nemesis.chains import parallel
from nemesis.errors import NemesisError
from nemesis.family import Draw, FaultContext, NodeFamily

CHANGE_WAIT_S = 10.0  # per change during the run
HEAL_WAIT_S = 20.0  # per change in the final heal (the cluster has just healed: a correct store elects in about a second)
VERIFY_WAIT_S = 5.0  # for a majority of the new voters to report a change that committed
RETRY_S = 0.3
MIN_VOTERS = 3  # a removal never leaves fewer voters than this
CYCLE_PAUSE_S = 1.0  # cycle-member: how long the node stays out before it is taken back
LEADER_CHANCE = 0.25  # of a drawn removal: the current leader (which leads on until it commits, then steps down)
# Refusals that say "not now": asked again. Any other refusal ends the change.
RETRIED = frozenset({"change-in-progress", "learner-behind", "not-leader", "timeout", "busy", "leader-unreachable"})


class Memberships:
    """The changes of one run: what was removed, what is only a learner, and the first configuration seen."""

    def __init__(self, ctx: FaultContext, clock=time.monotonic, sleep=time.sleep):
        self.ctx = ctx
        self.c = ctx.cluster
        self.clock, self.sleep = clock, sleep
        self.original: list[str] = list(self.c.node_ids)
        self.out: dict[str, str] = {}  # node -> "removed" | "learner", as far as this family knows
        self.touched = False  # an op ran: only then does the heal ask the target anything

    # ---- reading the cluster --------------------------------------------------

    def views(self, nodes: list[str] | None = None) -> dict[str, dict | None]:
        """Each node's own GET /membership (None: no answer)."""
        nodes = list(nodes or self.c.node_ids)
        answers = parallel(lambda n: self.c.membership(n, "show", None, 1.0), nodes)
        return {n: (doc if status == 200 else None) for n, (status, doc) in zip(nodes, answers, strict=True)}

    @staticmethod
    def leader_view(views: dict[str, dict | None]) -> tuple[str | None, dict | None]:
        leaders = [(v.get("term") or 0, n) for n, v in views.items() if v and v.get("role") == "leader"]
        if not leaders:
            return None, None
        n = max(leaders)[1]
        return n, views[n]

    def voters(self) -> list[str] | None:
        """The voters of the configuration the leader holds, if a leader answers."""
        _, view = self.leader_view(self.views())
        return list(view["voters"]) if view else None

    # ---- one change -------------------------------------------------------------

    def change(self, action: str, member: str, wait_s: float) -> dict[str, Any]:
        """Ask for one change until it is answered 200 or refused for good; {"status", "body", "tries", ...}."""
        deadline = self.clock() + wait_s
        tries: list[str] = []
        while True:
            views = self.views()
            leader, _ = self.leader_view(views)
            ask = leader or self.ctx.rng.choice([n for n, v in views.items() if v] or self.c.node_ids)
            status, body = self.c.membership(ask, action, member, 3.0)
            error = str(body.get("error")) if status != 200 else None
            tries.append(f"{ask}:{status}{'' if error is None else ' ' + error}")
            if status == 200:
                return {"status": 200, "asked": ask, "body": body, "tries": tries}
            if status == 400:
                raise NemesisError(f"{action} {member}: the target refused the request: {body}")
            final = status == 409 and error not in RETRIED
            if final or self.clock() >= deadline:
                return {"status": status, "asked": ask, "body": body, "tries": tries[-8:], "gave_up": not final}
            self.sleep(RETRY_S)

    def verify(self, voters: list[str], learners: list[str], wait_s: float = VERIFY_WAIT_S,
               everyone: bool = False) -> dict[str, Any]:
        """Poll the members' views until a majority of `voters` (everyone: every node that answers) report exactly
        this configuration; evidence."""
        deadline = self.clock() + wait_s
        want = (sorted(voters), sorted(learners))
        while True:
            views = self.views()
            agree = [n for n, v in views.items() if v and (sorted(v["voters"]), sorted(v["learners"])) == want]
            ok = (all(n in agree for n, v in views.items() if v) if everyone
                  else len([n for n in agree if n in voters]) > len(voters) // 2)
            if ok or self.clock() >= deadline:
                return {"verified": ok, "agree": agree, "views": {n: _brief(v) for n, v in views.items()}}
            self.sleep(RETRY_S)

    # ---- ops ------------------------------------------------------------------

    def remove(self, nodes: list[str]) -> tuple[list[str], dict[str, Any]]:
        voters = self.voters()
        if voters is None:
            return [], {"note": "no leader answered: nothing removed"}
        pool = [n for n in voters if n not in self.out]
        picked, notes = self.ctx.resolve(nodes, pool)
        done, evidence = [], {"voters_before": voters, **notes}
        for node in picked:
            if node not in voters:
                evidence[node] = "not a voter: nothing to remove"
                continue
            if len(voters) - 1 < MIN_VOTERS:
                evidence[node] = f"kept: removing it would leave fewer than {MIN_VOTERS} voters"
                continue
            res = self.change("remove", node, CHANGE_WAIT_S)
            if res["status"] != 200:
                evidence[node] = {"not_removed": res}
                self._learn_state(node)
                continue
            body = res["body"]
            ev = self.verify(list(body["voters"]), list(body["learners"]))
            self.out[node] = "removed"
            voters = list(body["voters"])
            done.append(node)
            evidence[node] = {"asked": res["asked"], "tries": res["tries"], "config": _brief(body), **ev}
        return done, evidence

    def readd(self, nodes: list[str], wait_s: float) -> tuple[list[str], dict[str, Any]]:
        """Take nodes back (all that are out when none is named): learner, then voter."""
        targets = [n for n in nodes if n in self.out] if nodes else list(self.out)
        done, evidence = [], {}
        for node in targets:
            ev: dict[str, Any] = {}
            if self.out.get(node) == "removed":
                res = self.change("add-learner", node, wait_s)
                ev["add-learner"] = _step(res)
                if res["status"] == 200 or res["body"].get("error") == "already-a-voter":
                    self.out[node] = "learner"
                else:
                    self._learn_state(node)
            if self.out.get(node) == "learner":
                res = self.change("promote", node, wait_s)
                ev["promote"] = _step(res)
                if res["status"] == 200:
                    body = res["body"]
                    ev.update(self.verify(list(body["voters"]), list(body["learners"])))
                    del self.out[node]
                    done.append(node)
                else:
                    self._learn_state(node)
                    ev["note"] = "still a learner: promoted at the latest by the heal"
            evidence[node] = ev
        return done, evidence

    def _learn_state(self, node: str) -> None:
        """After a change that was not answered 200 (it may still commit): what the leader's configuration says."""
        _, view = self.leader_view(self.views())
        if view is None:
            return
        if node in view["voters"]:
            self.out.pop(node, None)
        elif node in view["learners"]:
            self.out[node] = "learner"
        else:
            self.out[node] = "removed"

    def heal(self) -> dict[str, Any]:
        if not self.touched:
            return {}  # every family heals, asked for or not: this one only if it changed something
        _, view = self.leader_view(self.views())
        deadline = self.clock() + HEAL_WAIT_S
        while view is None and self.clock() < deadline:
            self.sleep(RETRY_S)
            _, view = self.leader_view(self.views())
        if view is None:
            return {"readd-member": {"verified": False, "nodes": [], "not_taken_back": sorted(self.out),
                                     "why": f"no leader answered /membership within {HEAL_WAIT_S:g} s"}}
        for n in self.original:
            if n not in view["voters"]:
                self.out.setdefault(n, "learner" if n in view["learners"] else "removed")
        if not self.out:
            return {}
        done, evidence = self.readd([], HEAL_WAIT_S)
        if self.out:
            return {"readd-member": {"verified": False, "nodes": done, "not_taken_back": sorted(self.out),
                                     "why": "the store did not make the change", **evidence}}
        check = self.verify(self.original, [], wait_s=VERIFY_WAIT_S * 2, everyone=True)
        return {"readd-member": {"nodes": done, **evidence, **check}}


def _brief(view: dict | None) -> dict | None:
    if not view:
        return None
    return {k: view[k] for k in ("voters", "learners", "member", "committed", "config_index") if k in view}


def _step(res: dict[str, Any]) -> dict[str, Any]:
    return {"status": res["status"], "asked": res["asked"], "tries": res["tries"], "config": _brief(res["body"])}


class _MembershipInjector:
    def __init__(self, ctx: FaultContext):
        self.m = Memberships(ctx)

    def invoke(self, op: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        f, nodes = op["f"], op["nodes"]
        self.m.touched = True
        if f == "remove-member":
            return self.m.remove(nodes)
        if f == "readd-member":
            return self.m.readd(nodes, CHANGE_WAIT_S)
        if f == "cycle-member":
            removed, evidence = self.m.remove(nodes)
            if not removed:
                return [], evidence
            self.m.sleep(CYCLE_PAUSE_S)
            back, again = self.m.readd(removed, CHANGE_WAIT_S)
            return back, {"remove-member": evidence, "readd-member": again}
        action = "add-learner" if f == "add-learner" else "promote"
        done, evidence = [], {}
        for node in nodes:
            res = self.m.change(action, node, CHANGE_WAIT_S)
            evidence[node] = _step(res)
            if res["status"] == 200:
                body = res["body"]
                evidence[node].update(self.m.verify(list(body["voters"]), list(body["learners"])))
                if action == "add-learner":
                    self.m.out[node] = "learner"
                else:
                    self.m.out.pop(node, None)
                done.append(node)
        return done, evidence

    def current(self) -> list[str]:
        return [f"membership:{n} {state}" for n, state in sorted(self.m.out.items())]

    def reapply(self, node: str) -> dict[str, Any] | None:
        return None  # the configuration lives in the log, which a restart keeps

    def after_restart(self, nodes: list[str], evidence: dict[str, Any]) -> dict[str, Any]:
        return {}

    def heal(self) -> dict[str, Any]:
        return self.m.heal()


class MembershipFamily(NodeFamily):
    """Remove a voter, and later take it back as a learner and promote it, through the target's admin API."""

    name = "membership"
    ops = ("remove-member", "readd-member", "add-learner", "promote-member", "cycle-member")
    starts = ("remove-member", "cycle-member")
    requires = ("membership",)
    # After kill (20) and partition (50): a node taken back must be up and reachable to catch up.
    heal_rank = 55

    def injector(self, ctx: FaultContext) -> _MembershipInjector:
        return _MembershipInjector(ctx)

    def draw(self, rng, nodes, busy, target=None):
        free = [n for n in nodes if n not in busy]
        if not free:
            return None
        if rng.random() < LEADER_CHANCE:
            return Draw("remove-member", {"nodes": ["leader"]})
        node = rng.choice(free)
        return Draw("remove-member", {"nodes": [node]}, reserved=(node,))

    def strategy(self, nodes):
        from hypothesis import strategies as st

        return st.builds(lambda n: {"nodes": [n]}, st.sampled_from(list(nodes) + ["leader"]))

    def label(self, f, value):
        nodes = self.nodes_hit(f, value)
        return {"remove-member": "removed", "readd-member": "taken back", "add-learner": "learner",
                "promote-member": "promoted"}.get(f, f) + (f" {','.join(nodes)}" if nodes else "")


MEMBERSHIP = MembershipFamily()


class MembershipCyclesFamily(MembershipFamily):
    """`membership`, but half of its draws are one whole cycle (`cycle-member`: remove a voter, CYCLE_PAUSE_S
    later take it back as a learner and promote it), so a configuration just grown back by one voter meets
    the next fault (a partition) as often as one just shrunk does. A store that sizes its quorum by the
    configuration before the latest change (raftkv's stale-majority) is wrong only after such a growth:
    4 voters just made from 3 take two for a majority. A spec names it `nemesis.membership:CYCLES`."""

    def draw(self, rng, nodes, busy, target=None):
        d = super().draw(rng, nodes, busy, target)
        if d is not None and rng.random() < 0.5:
            return Draw("cycle-member", d.value, ())  # back by the time it returns: nothing stays reserved
        return d


CYCLES = MembershipCyclesFamily()
