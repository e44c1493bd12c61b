"""Fault injectors, one module per fault family, and the schedule that combines them.

- `family`: what a fault family is (`FaultFamily`, its `Injector`, the `ClusterControl` it drives)
- `registry`: the one registry of families (built in, entry points `splitbrain.faults`, registered)
- `core`: the `Nemesis` (invoke(op) -> completion with evidence, heal_all, problems), composed of the families
- `grudges`: who cannot hear whom, as networkx graphs, and who a grudge leaves without a majority (pure)
- `partition`: grudges as iptables rules in the SPLITBRAIN chain; `netprobe` verifies them
- `loss`: random packet loss (iptables statistic match)
- `netem`: delay / duplicate / reorder where the kernel has netem (and the probe for it)
- `process`: kill / start, pause / resume
- `clock`: offset, strobe, rate through the target's clock file or libfaketime
- `vote_crash`: voters crash as they vote (a target failpoint), then one must choose again in that term
- `first_write_crash`: leaders crash with a client entry on their own disk only (a target failpoint), the
  k-th of a window staying down k times as long: Raft's Figure 8
- `schedule`: the seeded plan of operations over a run, and hand-written schedules
- `strategies`: hypothesis strategies of schedules
"""
