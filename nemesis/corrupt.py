"""The corrupt fault: flip bits in, or truncate, one file of a node's data dir while the node is down.

`corrupt` {nodes, mode: bitflip | truncate, file?, bits?, keep?}: for each node, list the regular, non-empty
files of its data dir (`Target.data_dir`) while it runs, kill it (SIGKILL), choose a file (seeded; `file`,
an fnmatch pattern relative to the data dir, narrows the choice, else any file of at most MAX_BYTES), read
it from the stopped container, change it and write it back in place, then read it again. `bitflip` flips
`bits` bits (default 1) at seeded positions; `truncate` cuts the file to `keep` of its length (a fraction,
default a seeded one below 1). Verified: the file read back has the hash the change should give, and
differs from the one before; the completion records the file, both sizes and sha256s, the flipped bit
positions or the new length. `restart-corrupted` starts the nodes again, with the damage: what the node
does with it (notices and refuses to start, repairs it, or serves from it) is the test.

A node that refuses to start on what it found stays down until the heal, which puts back the bytes the
fault replaced (a file the node has not touched since) and starts it again: normal again, a new disk with
the old contents. Runs on Docker clusters: a down container's files are read and written through Docker's
archive API (`ClusterControl.read_file`, `write_file`). With the lose-unsynced layer in the same run, the
files on disk under the mount are the node's own, so both mix.
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
from typing import Any

from nemesis.errors import NemesisError, NemesisOpError
from nemesis.family import LEADER, Draw, FaultContext, NodeFamily, layer_problem, node_list, number
from nemesis.process import Downed
from targets.base import no_data_dir, target_data_dir

MODES = ("bitflip", "truncate")
MAX_BYTES = 8 << 20  # a file read and written whole through the archive API; a named pattern has no limit
CANDIDATES = 5  # files tried in turn when the chosen one is gone by the time the node is down


def flip_bits(data: bytes, positions: list[int]) -> bytes:
    """data with each bit position (bit i of byte i // 8) inverted. Pure."""
    buf = bytearray(data)
    for pos in positions:
        buf[pos // 8] ^= 1 << (pos % 8)
    return bytes(buf)


def damage(data: bytes, mode: str, rng, bits: int = 1, keep: float | None = None) -> tuple[bytes, dict[str, Any]]:
    """The damaged bytes and what was done. Pure but for rng (seeded by the nemesis)."""
    if mode == "bitflip":
        positions = sorted(rng.sample(range(len(data) * 8), min(bits, len(data) * 8)))
        return flip_bits(data, positions), {"flipped_bits": positions}
    fraction = rng.random() * 0.9 if keep is None else keep
    size = min(len(data) - 1, int(len(data) * fraction))
    return data[:size], {"truncated_to": size, "dropped_bytes": len(data) - size}


def listing(out: str) -> list[tuple[str, int]]:
    """(relative path, size) of each line `find -printf '%s %P\\n'` printed."""
    files = []
    for line in out.splitlines():
        size, _, path = line.strip().partition(" ")
        if path and size.isdigit() and int(size) > 0:
            files.append((path, int(size)))
    return files


def choose(files: list[tuple[str, int]], pattern: str | None, rng) -> list[str]:
    """The candidate files in the order to try them: seeded, those matching pattern (else small enough)."""
    pool = sorted(p for p, size in files if (fnmatch.fnmatch(p, pattern) if pattern else size <= MAX_BYTES))
    rng.shuffle(pool)
    return pool[:CANDIDATES]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Corruptions(Downed):
    shown = "corrupted"

    def __init__(self, ctx: FaultContext):
        super().__init__(ctx)
        self.replaced: dict[tuple[str, str], tuple[bytes, str]] = {}  # (node, path) -> (original, sha written)

    def invoke(self, op: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if op["f"] == CORRUPT.stop_op:
            return self.restart(op)
        nodes, notes = self.victims(op)
        if not nodes:
            return [], {"note": "every chosen node was down or paused", **notes}
        evidence = {n: self._corrupt(n, op) for n in nodes}
        return nodes, {"verified": True, "nodes": evidence, **notes}

    def _corrupt(self, node: str, op: dict[str, Any]) -> dict[str, Any]:
        c = self.ctx.cluster
        data_dir = target_data_dir(self.ctx.target, c.layout)
        rc, out = c.exec(node, ["find", data_dir, "-type", "f", "-size", "+0", "-printf", "%s %P\\n"], timeout=30)
        if rc != 0:
            raise NemesisError(f"corrupt {node}: cannot list {data_dir}: {out.strip()[-200:]}")
        candidates = choose(listing(out), op.get("file"), self.ctx.rng)
        if not candidates:
            raise NemesisError(f"corrupt {node}: no file in {data_dir} to corrupt"
                               + (f" matches {op['file']!r}" if op.get("file") else f" of 1 to {MAX_BYTES} bytes"))
        killed = self.procs.kill([node])["nodes"][node]
        self.down.add(node)
        gone = []
        for rel in candidates:
            path = posixpath.join(data_dir, rel)
            before = c.read_file(node, path)
            if before is None or not before:
                gone.append(rel)  # renamed or removed between the listing and the kill
                continue
            after, done = damage(before, op["mode"], self.ctx.rng, op.get("bits", 1), op.get("keep"))
            c.write_file(node, path, after)
            back = c.read_file(node, path)
            if back != after or sha(after) == sha(before):
                raise NemesisError(f"corrupt {node}: {path} does not read back as written "
                                   f"(sha256 {sha(back or b'')[:12]}, expected {sha(after)[:12]})")
            self.replaced.setdefault((node, path), (before, sha(after)))
            self.replaced[(node, path)] = (self.replaced[(node, path)][0], sha(after))
            return {"file": path, "mode": op["mode"], "size_before": len(before), "size_after": len(after),
                    "sha256_before": sha(before), "sha256_after": sha(after), "read_back": True,
                    **done, **({"gone_before_the_kill": gone} if gone else {}), **killed}
        raise NemesisError(f"corrupt {node}: every chosen file was gone once it was down ({', '.join(gone)})")

    def heal(self) -> dict[str, Any]:
        """Start what this family left down; a node that refuses its damaged files gets them back whole."""
        c = self.ctx.cluster
        done: dict[str, Any] = {}
        started = self.restart_left()
        if started:
            done["restart-corrupted"] = started
        refused = sorted({n for n, _ in self.replaced} & {n for n, s in c.states().items() if s != "running"})
        if refused:
            repaired = {}
            for (node, path), (original, written) in sorted(self.replaced.items()):
                if node in refused and sha(c.read_file(node, path) or b"") == written:
                    c.write_file(node, path, original)
                    repaired[f"{node}:{path}"] = {"sha256": sha(original), "size": len(original)}
            done["repair-corrupted"] = {"repaired": repaired, "start": self.ctx.restart(refused)}
        self.replaced.clear()
        return done


class CorruptFamily(NodeFamily):
    name = "corrupt"
    ops = ("corrupt", "restart-corrupted")
    leader_ops = frozenset({"corrupt"})
    heal_rank = 22  # with the other restarts, before the network is healed
    bounce_chance = 0.5

    def problems(self, cluster, target) -> list[str]:
        why = layer_problem(cluster, self.name)  # a cluster that gives nodes layers has containers to read
        return no_data_dir(target, self.name) + ([f"{self.name}: {why}"] if why else [])

    def validate(self, op: dict[str, Any], node_ids: list[str]) -> dict[str, Any]:
        f = op["f"]
        value = op.get("value")
        nodes = node_list(value, node_ids, f, allow_empty=f == self.stop_op)
        if f == self.stop_op:
            return {"f": f, "nodes": nodes}
        fields = value if isinstance(value, dict) else {}
        mode = fields.get("mode", "bitflip")
        if mode not in MODES:
            raise NemesisOpError(f"corrupt: mode must be one of {', '.join(MODES)}, got {mode!r}")
        out: dict[str, Any] = {"f": f, "nodes": nodes, "mode": mode}
        if "file" in fields:
            if not isinstance(fields["file"], str) or not fields["file"] or fields["file"].startswith("/"):
                raise NemesisOpError(f"corrupt: file must be a pattern relative to the data dir, got {fields['file']!r}")
            out["file"] = fields["file"]
        if "bits" in fields:
            bits = number(fields["bits"], f, "bits")
            if bits < 1 or bits != int(bits):
                raise NemesisOpError(f"corrupt: bits must be a whole number >= 1, got {fields['bits']!r}")
            out["bits"] = int(bits)
        if "keep" in fields:
            keep = number(fields["keep"], f, "keep")
            if not 0 <= keep < 1:
                raise NemesisOpError(f"corrupt: keep must be a fraction in [0, 1), got {fields['keep']!r}")
            out["keep"] = keep
        return out

    def injector(self, ctx):
        return _Corruptions(ctx)

    def draw(self, rng, nodes, busy, target=None):
        free = sorted(n for n in nodes if n not in busy)
        if not free:
            return None
        hit = (LEADER,) if not busy and rng.random() < 0.3 else (rng.choice(free),)
        return Draw(self.start_op, {"nodes": list(hit), "mode": rng.choice(MODES)}, hit)

    def strategy(self, nodes):
        from hypothesis import strategies as st

        return st.fixed_dictionaries({"nodes": st.one_of(st.just([LEADER]), st.sampled_from(sorted(nodes)).map(
            lambda n: [n])), "mode": st.sampled_from(MODES)})

    def label(self, f, value):
        return "corrupt" if f == self.start_op else f


CORRUPT = CorruptFamily()
