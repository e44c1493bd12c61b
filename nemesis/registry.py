"""The fault families: one registry that the spec, schedule, nemesis, runner, report and strategies all read.

A family outside splitbrain is added by an entry point in the group
`splitbrain.faults` (`mine = "pkg.faults:MINE"`), by `FAULT_FAMILIES.register`,
or named as "module:attr" in a spec; see docs/fault-families.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from nemesis.errors import NemesisOpError
from nemesis.family import FaultFamily, NodeLayer
from plugins.registry import PluginError, Registry

FAULT_FAMILIES: Registry[FaultFamily] = Registry("fault family", group="splitbrain.faults", builtins={
    "partition": "nemesis.partition:PARTITION",
    "kill": "nemesis.process:KILL",
    "pause": "nemesis.process:PAUSE",
    "clock": "nemesis.clock:CLOCK",
    "loss": "nemesis.loss:LOSS",
    "delay": "nemesis.netem:DELAY",
    "duplicate": "nemesis.netem:DUPLICATE",
    "reorder": "nemesis.netem:REORDER",
    "vote-crash": "nemesis.vote_crash:VOTE_CRASH",
    "first-write-crash": "nemesis.first_write_crash:FIRST_WRITE_CRASH",
    "impostor": "nemesis.impostor:IMPOSTOR",
    "lose-unsynced": "nemesis.lose_unsynced:LOSE_UNSYNCED",
    "corrupt": "nemesis.corrupt:CORRUPT",
    "membership": "nemesis.membership:MEMBERSHIP",
})
# The order a spec's help lists them in, and the order they heal in when ranks tie.
BUILTIN = ("partition", "kill", "pause", "clock", "loss", "delay", "duplicate", "reorder", "vote-crash",
           "first-write-crash", "impostor", "lose-unsynced", "corrupt", "membership")


def family(name: str) -> FaultFamily:
    """The family called name; PluginError (one line) when there is none."""
    return FAULT_FAMILIES.load(name)


def families() -> dict[str, FaultFamily]:
    """Every family that loads, built-in ones first."""
    loaded = FAULT_FAMILIES.load_all()
    return {n: loaded[n] for n in [*(b for b in BUILTIN if b in loaded), *sorted(set(loaded) - set(BUILTIN))]}


def names() -> list[str]:
    return list(families())


def node_layers(faults: list[str] | tuple[str, ...], target: Any) -> tuple[NodeLayer, ...]:
    """The node layers the named families need on this target, in the order named (unknown names skipped:
    the nemesis refuses them before the run)."""
    out: list[NodeLayer] = []
    for name in faults:
        try:
            layer = family(name).node_layer(target)
        except PluginError:
            continue
        if layer is not None and layer.name not in {x.name for x in out}:
            out.append(layer)
    return tuple(out)


def op_families(fams: dict[str, FaultFamily] | None = None) -> dict[str, FaultFamily]:
    """Op name -> the family that understands it (of `fams`, default every family)."""
    return {f: fam for fam in (fams or families()).values() for f in fam.ops}


def family_of(f: str, table: dict[str, FaultFamily] | None = None) -> FaultFamily:
    """The family of op f; NemesisOpError naming the known ops when none has it."""
    table = table or op_families()
    if f not in table:
        raise NemesisOpError(f"unknown nemesis op {f!r}; known: {', '.join(table)}")
    return table[f]


def fault_facts(f: str, value: Any, table: dict[str, FaultFamily] | None = None) -> dict[str, Any] | None:
    """What the split-brain checker needs of a nemesis op that completed (see `Nemesis.invoke`)."""
    fam = (table or op_families()).get(f)
    if fam is None:
        return None
    facts: dict[str, Any] = {"family": fam.name, "nodes": fam.nodes_hit(f, value)}
    if fam.hits_leader(f):
        cut = fam.cut_off(value)
        facts["leader_nodes"] = facts["nodes"] if cut is None else cut
    extra = getattr(fam, "facts", None)  # a family from before FamilyBase.facts may lack it
    if callable(extra):
        facts.update(extra(f, value))
    return facts


def facts_reader() -> Callable[[str, Any], dict[str, Any] | None]:
    """`fault_facts` over the families registered now, looked up once (a checker asks it per nemesis event)."""
    return functools.partial(fault_facts, table=op_families())
