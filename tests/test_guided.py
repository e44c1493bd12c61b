"""The guided planner (nemesis.guided) on observations fed by hand: its abstract states, its ops, its choices."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nemesis.guided import GuidedPlanner
from nemesis.schedule import parse_schedule, schedule_entries

NODES = ["n1", "n2", "n3"]


def _planner(seed=1, faults=("partition", "kill", "pause"), interval=2.0, time_limit=40.0):
    return GuidedPlanner(seed, faults, NODES, interval, time_limit)


def _status(role="follower", term=1, commit=0):
    return {"role": role, "term": term, "leader": None, "commit_index": commit}


def _play(planner, feed):
    """Every decision of a run, feeding `feed(step, planner)` between them; the ops in order."""
    ops = []
    for i, at in enumerate(planner.steps()):
        feed(i, planner)
        ops += planner.decide(at)
    return ops + planner.finish()


def test_the_state_says_what_the_step_saw():
    p = _planner()
    for n in NODES:
        p.observe(n, _status("leader" if n == "n1" else "follower", term=3, commit=7))
    p.client("ok")
    assert p.state() == (0, 0, False, False, True, "all")
    p.observe("n2", _status("leader", term=5, commit=9))  # n1 still claims: two leaders at once
    p.client("fail")
    assert p.state() == (1, 2, True, False, False, "some")
    p.decide(2.0)  # a new step: a new window
    p.observe("n1", None)
    p.observe("n2", _status("candidate", term=6))
    p.client("info")
    assert p.state()[3] is True and p.state()[5] == "none"


def test_a_minority_of_answers_says_nothing_about_leaders():
    p = _planner()
    p.observe("n1", _status("follower"))  # one of three: not yet a picture of the cluster
    assert p.state()[3] is False


def test_same_seed_and_observations_give_the_same_ops_and_another_seed_others():
    def feed(i, p):
        for n in NODES:
            p.observe(n, _status("leader" if (i + int(n[1])) % 3 == 0 else "follower", term=1 + i // 3, commit=i))
        p.client("ok" if i % 2 else "info")

    a, b, c = (_play(_planner(seed=s), feed) for s in (4, 4, 5))
    assert a == b and a != c


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), st.lists(st.tuples(st.sampled_from(NODES), st.sampled_from(["leader", "follower", "down"]),
                                                 st.integers(0, 10**12)), max_size=200))
def test_every_plan_is_a_valid_schedule_whose_faults_all_stop(seed, observations):
    it = iter(observations)

    def feed(i, p):
        for node, role, term in [x for _, x in zip(range(5), it, strict=False)]:
            p.observe(node, None if role == "down" else _status(role, term))

    ops = _play(_planner(seed=seed), feed)
    replayed = parse_schedule(schedule_entries(ops), NODES)  # what schedule.yaml holds reads back
    assert [(o.at, o.family, o.f, o.value) for o in replayed] == sorted(
        [(o.at, o.family, o.f, o.value) for o in ops], key=lambda t: t[0])
    active: set[str] = set()
    for op in ops:  # in the order played: a start only while its family is off, a stop only while on
        start = op.f not in ("stop-partition", "start", "resume")
        assert (op.family not in active) if start else (op.family in active), op
        (active.add if start else active.discard)(op.family)
    assert not active


def test_an_action_that_leads_to_rare_states_is_chosen_more_often():
    """A rigged cluster where only a bounce of a kill leads anywhere new (every node claiming to lead at
    once): whenever a bounce is on offer the planner should pick one more often than a uniform choice
    among what is on offer would."""
    p = _planner(faults=("partition", "kill"), time_limit=400.0)
    picked = offered = 0.0
    for at in p.steps():
        bounced = p.last is not None and p.last[0] == "bounce"
        for n in NODES:  # a fresh picture each step: no claim left over from the step before
            p.observe(n, None)
        for n in NODES:
            p.observe(n, _status("leader" if bounced or n == "n1" else "follower"))
        actions = p._actions()
        bounces = sum(1 for a in actions if a[0] == "bounce")
        p.decide(at)
        if bounces:
            offered += bounces / len(actions)
            picked += p.last[0] == "bounce"
    assert picked > 1.5 * offered, (picked, offered)  # a uniform choice gives about 1.0
