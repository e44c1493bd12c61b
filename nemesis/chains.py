"""The harness's own iptables chain inside a node: the one mechanism partitions, client cuts and loss share.

A fault's rules live in a chain of their own (SPLITBRAIN for DROP rules),
jumped to from the top of INPUT; nothing else in the node's ruleset is
touched, and removing the chain and its jump undoes the fault whole.
"""

from __future__ import annotations

import concurrent.futures
import shlex
import time

from nemesis.errors import NemesisError

CHAIN = "SPLITBRAIN"
INSTALL_ATTEMPTS = 3  # see install_drops


def chain_script(chain: str, rules: list[str]) -> str:
    """Shell that (re)creates chain with exactly rules, jumped to from INPUT once, then lists it.

    One iptables-restore --noflush replaces the chain's rules in one
    transaction (declaring the chain creates or flushes it, and touches no
    other chain): one process instead of one per rule.
    """
    restore = ["*filter", f":{chain} - [0:0]", *[f"-A {chain} {r}" for r in rules], "COMMIT"]
    return (
        f"printf '%s\\n' {' '.join(shlex.quote(line) for line in restore)} | iptables-restore -w -n"
        f" && (iptables -w -C INPUT -j {chain} 2>/dev/null || iptables -w -I INPUT 1 -j {chain})"
        f" && iptables -w -S {chain}"
    )


def remove_chain_script(chain: str) -> str:
    """Shell that removes the chain and its jump (idempotent), then lists what is left of it."""
    return (
        f"while iptables -w -D INPUT -j {chain} 2>/dev/null; do :; done; "
        f"iptables -w -F {chain} 2>/dev/null; iptables -w -X {chain} 2>/dev/null; "
        f"iptables -w -S | grep -cE -- '-N {chain}$|-A {chain} |-j {chain}$' || true"
    )


def parallel(fn, items) -> list:
    items = list(items)
    if not items:
        return []
    with concurrent.futures.ThreadPoolExecutor(len(items)) as ex:
        return list(ex.map(fn, items))


def install_drops(cluster, node: str, rules: list[str]) -> str:
    """Make the node's SPLITBRAIN chain exactly `rules` (DROP rules) and check the listing; NemesisError if not.

    The chain is replaced whole, so installing again is safe. A listing short
    of rules was seen on a loaded machine (a docker exec that came back with
    exit 0 and no output at load 27 on 2 cores; a node's namespace changing
    under us as it restarted): try again before calling the fault one that
    silently did nothing."""
    present = 0
    for attempt in range(INSTALL_ATTEMPTS):
        rc, out = cluster.exec_netns(node, ["sh", "-c", chain_script(CHAIN, rules)])
        if rc != 0:
            raise NemesisError(f"partition: installing rules on {node} failed (exit {rc}): {out.strip()[-300:]}")
        present = sum(1 for line in out.splitlines() if line.startswith(f"-A {CHAIN} ") and "DROP" in line)
        if present == len(rules):
            return out
        time.sleep(0.2 * (attempt + 1))
    raise NemesisError(f"partition: {node} shows {present} DROP rules after installing {len(rules)} "
                       f"({INSTALL_ATTEMPTS} attempts)")


def remove_chain(cluster, node: str) -> None:
    """Remove the node's SPLITBRAIN chain and its jump; NemesisError if a rule is left."""
    rc, out = cluster.exec_netns(node, ["sh", "-c", remove_chain_script(CHAIN)])
    left = int((out.strip().splitlines() or ["0"])[-1]) if out.strip() else 0
    if left:
        raise NemesisError(f"partition heal: {node} still has {left} {CHAIN} rule(s)")
