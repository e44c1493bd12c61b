"""Command line for one raftkv node: ``python3 -m targets.raftkv --id n1 --peers ... --client ... --data ...``.

Errors a user can cause (bad flags, an unreadable key file, an id missing
from --peers, a port already taken, a data directory from another version)
print one line on stderr and exit 2. SIGTERM and SIGINT stop the node
gracefully (exit 0). Notable events are logged one line each on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import signal
import sys

from .failpoints import CRASH_EXIT_CODE, FAILPOINTS
from .node import BUGS, NodeConfig
from .server import RaftKVServer, ServerConfig
from .storage import DataDirLocked, IncompatibleDataDir
from .transport import KeyFileError, read_cluster_key

PROG = "python3 -m targets.raftkv"


class UsageError(Exception):
    """A mistake in how the node was started; its message is the one line the user sees."""


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def parse_address(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{what}: expected HOST:PORT, got {text!r}")
    return host, int(port)


def parse_peers(text: str) -> dict[str, tuple[str, int]]:
    peers: dict[str, tuple[str, int]] = {}
    for item in text.split(","):
        node_id, sep, addr = item.strip().partition("=")
        if not sep or not node_id:
            raise UsageError(f"--peers: expected ID=HOST:PORT, got {item!r}")
        if node_id in peers:
            raise UsageError(f"--peers: node id {node_id!r} appears twice")
        peers[node_id] = parse_address(addr, f"--peers {node_id}")
    return peers


def parse_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    if not sep or not lo.isdigit() or not hi.isdigit() or not 0 < int(lo) <= int(hi):
        raise UsageError(f"--election-timeout: expected LO-HI in ms with 0 < LO <= HI, got {text!r}")
    return int(lo), int(hi)


def build_parser(prog: str = PROG, bugs: dict[str, str] = BUGS, failpoints: dict[str, str] = FAILPOINTS,
                 description: str = "Run one node of raftkv, splitbrain's built-in Raft key-value store.",
                 ) -> argparse.ArgumentParser:
    """The node's flags; targets/paxoskv passes its own name, bugs and failpoints."""
    bug_list = "\n".join(f"  {name:22} {desc}" for name, desc in bugs.items())
    fp_list = "\n".join(f"  {name:22} {desc}" for name, desc in failpoints.items())
    p = _OneLineParser(
        prog=prog,
        description=description,
        epilog="deliberate bugs (--bug NAME, repeatable; all off by default):\n" + bug_list
        + "\n\nfailpoints (with --failpoints: PUT /failpoints/NAME arms one, DELETE disarms;\n"
        + f"a node that crashes at one exits with status {CRASH_EXIT_CODE}):\n" + fp_list,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--id", required=True, help="this node's id; must appear in --peers")
    p.add_argument("--peers", required=True,
                   help="every member, this one included: ID=HOST:PORT,ID=HOST:PORT,...")
    p.add_argument("--client", required=True, metavar="HOST:PORT", help="HTTP client API address")
    p.add_argument("--data", required=True, metavar="DIR", help="data directory (created if missing)")
    p.add_argument("--cluster-key-file", required=True, metavar="FILE",
                   help="file holding the shared key that authenticates peer frames")
    p.add_argument("--election-timeout", default="150-300", metavar="LO-HI",
                   help="randomized election timeout range in ms (default 150-300)")
    p.add_argument("--heartbeat", type=int, default=50, metavar="MS",
                   help="leader heartbeat interval in ms (default 50)")
    p.add_argument("--tick", type=int, default=10, metavar="MS", help="tick length in ms (default 10)")
    p.add_argument("--snapshot-every", type=int, default=1000, metavar="N",
                   help="snapshot and compact the log every N applied entries (default 1000)")
    p.add_argument("--lease-reads", action="store_true", help="serve reads from a leader lease")
    p.add_argument("--bug", action="extend", nargs="+", default=[], choices=sorted(bugs),
                   metavar="NAME", help="enable deliberate bugs (listed below); repeatable")
    p.add_argument("--clock-file", metavar="PATH",
                   help='clock control file, JSON {"offset_s": float, "rate": float} '
                        "(see targets/raftkv/clock.py)")
    p.add_argument("--failpoints", action="store_true",
                   help="serve /failpoints, so a test harness can make this node crash at a chosen instant")
    p.add_argument("--no-fsync", action="store_true",
                   help="skip fsync (unsafe; only for measuring what fsync costs)")
    return p


def config_from_args(argv: list[str], parser: argparse.ArgumentParser | None = None,
                     node_config: type[NodeConfig] = NodeConfig) -> ServerConfig:
    args = (parser or build_parser()).parse_args(argv)
    peers = parse_peers(args.peers)
    if args.id not in peers:
        raise UsageError(f"--id {args.id!r} is not in --peers ({', '.join(peers)})")
    client = parse_address(args.client, "--client")
    if args.heartbeat <= 0 or args.tick <= 0 or args.snapshot_every <= 0:
        raise UsageError("--heartbeat, --tick and --snapshot-every must be positive")
    try:
        key = read_cluster_key(args.cluster_key_file)
    except KeyFileError as e:
        raise UsageError(str(e)) from None
    try:
        node = node_config(id=args.id, peers=tuple(peers),
                          election_timeout=parse_range(args.election_timeout),
                          heartbeat=args.heartbeat, tick_ms=args.tick,
                          lease_reads=args.lease_reads, bugs=frozenset(args.bug),
                          snapshot_every=args.snapshot_every)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return ServerConfig(node=node, peer_addrs=peers, client_addr=client, data_dir=args.data,
                        cluster_key=key, clock_file=args.clock_file,
                        fsync=not (args.no_fsync or "no-fsync" in args.bug), failpoints=args.failpoints)


async def serve(server: RaftKVServer) -> int:
    """Run until SIGTERM/SIGINT (0) or until the node's loop fails (1)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except OSError as e:
        await server.stop()
        raise UsageError(f"cannot listen: {e.strerror or e}") from None
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(server.failed.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()
    if server.failed.is_set():
        await server.stop()
        return 1
    logging.getLogger("raftkv").info("stopping (signal)")
    await server.stop()
    return 0


def configure_logging(node_id: str) -> None:
    """One timestamped line per event on stderr (RAFTKV_DEBUG=1 for more)."""
    level = logging.DEBUG if os.environ.get("RAFTKV_DEBUG") else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr,
                        format=f"%(asctime)s.%(msecs)03d {node_id} %(levelname)s %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S")
    # `kill -USR1 <pid>` dumps every thread's stack into the node log: for diagnosing a hung node.
    try:
        faulthandler.register(signal.SIGUSR1, file=sys.stderr)
    except (AttributeError, ValueError, OSError):  # stderr without a file descriptor (embedded)
        pass


def main(argv: list[str] | None = None, name: str = "raftkv", parser: argparse.ArgumentParser | None = None,
         node_config: type[NodeConfig] = NodeConfig, server_class: type[RaftKVServer] = RaftKVServer) -> int:
    """Run one node; targets/paxoskv runs its own through the same steps (its name, flags and classes)."""
    if argv is None:
        argv = sys.argv[1:]
    try:
        config = config_from_args(argv, parser, node_config)
    except UsageError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    configure_logging(config.node.id)
    server = server_class(config)
    try:
        server.open_storage()
    except (IncompatibleDataDir, DataDirLocked) as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{name}: error: data directory {config.data_dir}: {e.strerror or e}", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(serve(server))
    except UsageError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2


def _loop_factory():
    """uvloop's event loop where it is installed (a dependency in pyproject.toml; Debian's python3-uvloop
    in the node image), else asyncio's own. A node's time goes mostly to its loop's socket and callback
    machinery; on libuv the bench's 32 writers got 1.6x the writes per second, at a third less CPU per
    write on every node (bench/raftkv_vs_etcd.py)."""
    try:
        import uvloop
    except ImportError:
        logging.getLogger("raftkv").warning("uvloop is not installed: running on asyncio's slower event loop")
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
