"""The observer: every node polled about every 50 ms, a silent node recorded as down without slowing the others."""

from __future__ import annotations

import asyncio

from harness.observer import Observer


def test_each_node_is_sampled_about_every_50ms_and_a_hung_node_does_not_slow_the_rest():
    samples: list[tuple[str, object]] = []

    async def probe(node):
        if node == "n3":
            await asyncio.sleep(10)  # paused: never answers
        return {"role": "leader" if node == "n1" else "follower", "term": 4, "leader": "n1",
                "commit_index": 7, "wall_time": 1.5, "nested": {"dropped": True}}

    async def main():
        obs = Observer(["n1", "n2", "n3"], probe, lambda n, v: samples.append((n, v)), interval=0.05, timeout=0.1)
        task = asyncio.create_task(obs.run())
        await asyncio.sleep(1.0)
        obs.stop()
        await task
        return obs

    obs = asyncio.run(main())
    by_node = {n: [v for m, v in samples if m == n] for n in ("n1", "n2", "n3")}
    assert 12 <= len(by_node["n1"]) <= 22 and 12 <= len(by_node["n2"]) <= 22
    assert by_node["n3"] and all(v is None for v in by_node["n3"])
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
