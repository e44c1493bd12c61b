"""The asyncio loop of one paxoskv node: raftkv's server (targets/raftkv/server.py) around the paxoskv node.

Ticks from the skewable clock, the HMAC peer transport, the HTTP client API,
group commit with fsync before any message or reply leaves, snapshots in the
background: all raftkv's. Only what it drives differs, named by class
attributes: the node, the slot storage, and the message a promise answers.
"""

from __future__ import annotations

from targets.paxoskv import messages as m
from targets.paxoskv.failpoints import FAILPOINTS, granted_promise
from targets.paxoskv.node import PaxosKVNode
from targets.paxoskv.storage import SlotStorage
from targets.raftkv.server import RaftKVServer, ServerConfig


class PaxosKVServer(RaftKVServer):
    node_class = PaxosKVNode
    storage_class = SlotStorage
    known_failpoints = FAILPOINTS
    vote_request = m.PREPARE
    granted_vote = staticmethod(granted_promise)


__all__ = ["PaxosKVServer", "ServerConfig"]
