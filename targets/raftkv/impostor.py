"""A rogue raftkv member for the impostor fault: ``python3 -m targets.raftkv.impostor --id n2 --term T ...``.

It is raftkv's own transport and message format, driven by a hostile loop
instead of the Raft core: it claims a member's id (or one no member has),
holds a wrong cluster key or none (or, for an experiment, the cluster's own),
and every heartbeat it asks every member
for its vote in a term far ahead (forced, as a leadership transfer would, so
that a member's leader lease does not make it ignore the request) and sends
it a heartbeat append of that term, as a leader of that term would.

It cannot win an election by the book: the members answer the id it claims,
at that member's real address, not the impostor. It does not need to. A
member that takes one of its messages adopts its term, deposes its own
leader and follows the impostor, which keeps every member's election timer
reset for as long as it runs. A member that checks the cluster key hears
nothing from it: the handshake fails and the member hangs up.

It logs a summary after a second and then every two (links up, messages queued and
dropped); SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from .__main__ import UsageError, parse_address, parse_peers
from .messages import APPEND, VOTE
from .transport import KeyFileError, PeerTransport, read_cluster_key

log = logging.getLogger("raftkv.impostor")
# The log length it claims, so that any member's up-to-date check passes.
LAST_INDEX = 2**40


def rogue_messages(claim: str, members: list[str], term: int, round_: int) -> list[dict]:
    """What the impostor sends in one heartbeat round: a forced vote request and a heartbeat to each member."""
    out = []
    for dst in members:
        base = {"src": claim, "dst": dst, "term": term}
        out.append({**base, "type": VOTE, "last_index": LAST_INDEX, "last_term": term, "force": True})
        out.append({**base, "type": APPEND, "prev_index": 0, "prev_term": 0, "entries": [], "commit": 0,
                    "seq": round_})
    return out


async def run(claim: str, listen: tuple[str, int], members: dict[str, tuple[str, int]], key: bytes,
              term: int, heartbeat_s: float) -> None:
    received: list[dict] = []
    peers = {**members, claim: listen}
    transport = PeerTransport(claim, peers, key, received.append)
    await transport.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    targets = sorted(n for n in members if n != claim)
    log.info("impostor claiming %s, term %d, sending to %s", claim, term, ", ".join(targets))
    round_, next_report = 0, loop.time() + 1.0
    try:
        while not stop.is_set():
            round_ += 1
            for msg in rogue_messages(claim, targets, term, round_):
                transport.send(msg)
            if loop.time() >= next_report:
                up = [n for n in targets if transport._links[n].connected]
                log.info("round %d: links up %s; sent %d, dropped %d, received %d", round_, up or "none",
                         transport.counters["peer_messages_sent"], transport.counters["peer_messages_dropped"],
                         len(received))
                next_report = loop.time() + 2.0
            try:
                await asyncio.wait_for(stop.wait(), heartbeat_s)
            except TimeoutError:
                pass
    finally:
        await transport.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m targets.raftkv.impostor", description=__doc__.splitlines()[0])
    p.add_argument("--id", required=True, help="the member id it claims (or a new one)")
    p.add_argument("--listen", required=True, metavar="HOST:PORT", help="its own peer address")
    p.add_argument("--peers", required=True, help="the members it attacks: ID=HOST:PORT,...")
    p.add_argument("--term", type=int, required=True, help="the term it campaigns in")
    p.add_argument("--key", choices=("wrong", "none", "stolen"), default="wrong",
                   help="wrong: a random key of its own (default); none: the empty key; "
                        "stolen: the cluster's own, read from --key-file")
    p.add_argument("--key-file", metavar="FILE", help="the cluster key file, for --key stolen")
    p.add_argument("--heartbeat", type=int, default=50, metavar="MS")
    args = p.parse_args(argv)
    try:
        listen = parse_address(args.listen, "--listen")
        members = parse_peers(args.peers)
    except UsageError as e:
        print(f"raftkv impostor: error: {e}", file=sys.stderr)
        return 2
    members.pop(args.id, None)  # its own entry is its listen address
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s.%(msecs)03d impostor:{args.id} %(levelname)s %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S")
    # Its links go up and down twice a second against a store that hangs up on it: the summary says enough.
    logging.getLogger("raftkv.transport").setLevel(logging.WARNING)
    if args.key == "stolen":
        try:
            key = read_cluster_key(args.key_file or "")
        except KeyFileError as e:
            print(f"raftkv impostor: error: {e}", file=sys.stderr)
            return 2
    else:
        key = os.urandom(32) if args.key == "wrong" else b""
    asyncio.run(run(args.id, listen, members, key, args.term, args.heartbeat / 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
