"""The observer: every node polled about every 50 ms, a silent node recorded as down without slowing the others."""

from __future__ import annotations

import asyncio

from harness.observer import Observer


def test_each_node_is_sampled_about_every_50ms_and_a_hung_node_does_not_slow_the_rest():
    # Counted in samples of the hung node, not in wall time: the machine's load
    # stretches both alike, so the ratio holds on a busy host and fails only
    # if the hung node's timeout delays the others' polls.
    samples: list[tuple[str, object]] = []

    async def probe(node):
        if node == "n3":
            await asyncio.sleep(10)  # paused: never answers
        return {"role": "leader" if node == "n1" else "follower", "term": 4, "leader": "n1",
                "commit_index": 7, "wall_time": 1.5, "nested": {"dropped": True}}

    async def main():
        obs = Observer(["n1", "n2", "n3"], probe, lambda n, v: samples.append((n, v)), interval=0.05, timeout=0.5)
        task = asyncio.create_task(obs.run())
        while sum(1 for n, _ in samples if n == "n3") < 3:  # three timeouts of the hung node: >= 1.5 s
            await asyncio.sleep(0.01)
        obs.stop()
        await task
        return obs

    obs = asyncio.run(main())
    by_node = {n: [v for m, v in samples if m == n] for n in ("n1", "n2", "n3")}
    hung = len(by_node["n3"])
    # A 0.5 s timeout against a 50 ms interval: about 10 polls of each live node per timeout. Polled
    # in one round with the hung node, they would get one poll per timeout (about `hung`).
    assert len(by_node["n1"]) >= 4 * hung and len(by_node["n2"]) >= 4 * hung, (len(by_node["n1"]), hung)
    assert 3 <= hung <= 4 and all(v is None for v in by_node["n3"])
    first = by_node["n1"][0]
    assert first["role"] == "leader" and first["term"] == 4 and first["commit_index"] == 7
    assert first["wall_time"] == 1.5 and "nested" not in first  # flat values only
    assert obs.leader() == "n1"


def test_the_leader_is_the_claimant_with_the_highest_term():
    obs = Observer(["a", "b"], None, None)  # type: ignore[arg-type]
    obs.latest = {"a": {"role": "leader", "term": 3}, "b": {"role": "leader", "term": 5}}
    assert obs.leader() == "b"
    obs.latest = {"a": None, "b": {"role": "follower", "term": 5}}
    assert obs.leader() is None
