"""Fault injectors, one module per fault family, and the schedule that combines them.

- `core`: the `Nemesis` (invoke(op) -> completion with evidence, heal_all, problems) and op validation
- `grudges`: who cannot hear whom, as networkx graphs (pure)
- `partition`: grudges as iptables rules in the SPLITBRAIN chain; `netprobe` verifies them
- `loss`: random packet loss (iptables statistic match); probes for netem and iptables
- `netem`: delay / duplicate / reorder where the kernel has netem
- `process`: kill / start, pause / resume
- `clock`: offset, strobe, rate through the target's clock file or libfaketime
- `vote_crash`: voters crash as they vote (a target failpoint), then one must choose again in that term
- `schedule`: the seeded plan of operations over a run
"""
