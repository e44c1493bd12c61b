"""The paxoskv target plugin: raftkv's plugin (HTTP client, status probe, clock file, failpoints) for the Paxos store.

The client API, the status fields (the promised ballot as "term", "leader",
"commit_index", "wall_time", "clock_rate") and the outcome rules are
raftkv's, so every workload, fault and checker works unchanged. What differs:
the node program (`python3 -m targets.paxoskv`), its image (targets/paxoskv
plus the raftkv modules it runs), its bugs and failpoints, and no impostor
(a rogue would need paxoskv's own campaign; the transport is raftkv's, whose
impostor tests cover it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from targets.base import ClusterLayout, TargetOptions
from targets.image import ImageRecipe, files_under
from targets.options import SettingsError, positive_int, refusals, unknown
from targets.raftkv.plugin import NODE_PACKAGES, NOT_IN_NODE_IMAGE, REPO_ROOT, RaftKV

PAXOSKV_OPTIONS = ("election_timeout", "heartbeat", "tick", "lease_reads")


class PaxosKV(RaftKV):
    """The built-in Multi-Paxos key-value store (targets/paxoskv)."""

    name = "paxoskv"
    impostor = None  # nemesis/impostor.py refuses a target without one, before a run

    def image_recipe(self) -> ImageRecipe:
        # What a node runs: targets/paxoskv and the raftkv modules it is built on, sources only (the
        # README and the tools stay out, so editing them does not rebuild the image).
        files = (("targets/__init__.py", REPO_ROOT / "targets" / "__init__.py"),) + tuple(
            (dest, src)
            for package in ("targets/raftkv", "targets/paxoskv")
            for dest, src in files_under(REPO_ROOT, package)
            if Path(dest).name not in NOT_IN_NODE_IMAGE and Path(dest).suffix == ".py"
        )
        return ImageRecipe(name=self.name, files=files, packages=NODE_PACKAGES,
                           env=(("PYTHONDONTWRITEBYTECODE", "1"),))

    def node_command(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> list[str]:
        cmd = super().node_command(node_id, cluster, options)
        return [("targets.paxoskv" if part == "targets.raftkv" else part) for part in cmd]

    def unsupported_options(self, settings: dict[str, Any]) -> list[str]:
        return refusals(_check_paxoskv_options, settings)

    def failpoints(self) -> dict[str, str]:
        from targets.paxoskv.failpoints import FAILPOINTS

        return dict(FAILPOINTS)

    def data_dir(self, layout: ClusterLayout) -> str:
        """The node's --data: FORMAT, the checksummed wal of promises and slots, the snapshot."""
        return layout.data_dir

    def bugs(self) -> dict[str, str]:
        from targets.paxoskv.node import BUGS

        return dict(BUGS)

    def peer_auth(self) -> str:
        return ("HMAC-SHA256 challenge-response handshake under the run's cluster key, then frames "
                "sequenced under a per-connection key (raftkv's transport, targets/raftkv/transport.py)")


def _check_paxoskv_options(settings: dict[str, Any]) -> None:
    unknown("paxoskv", settings, PAXOSKV_OPTIONS)
    if "election_timeout" in settings:
        text = str(settings["election_timeout"]) if not isinstance(settings["election_timeout"], bool) else ""
        lo, sep, hi = text.partition("-")
        if not (sep and lo.isdigit() and hi.isdigit() and len(text) < 16 and 0 < int(lo) <= int(hi)):
            raise SettingsError(f"election_timeout: expected \"LO-HI\" in ms with 0 < LO <= HI, "
                                f"got {settings['election_timeout']!r}")
    for name in ("heartbeat", "tick"):
        if name in settings:
            positive_int(name, settings[name], "ms")
    if "lease_reads" in settings and not isinstance(settings["lease_reads"], bool):
        raise SettingsError(f"lease_reads: expected true or false, got {settings['lease_reads']!r}")
