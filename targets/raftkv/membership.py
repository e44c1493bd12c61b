"""raftkv's cluster membership: who votes, who only replicates, and how one change is planned.

Single-server changes through the log, as in Ongaro's dissertation (chapter
4): a configuration entry (kind "config", data {"voters", "learners"}) takes
effect on a node as soon as it is in its log, committed or not, and stops
having effect if that entry is truncated away. A leader appends one change
at a time (the previous one committed) and only after it has committed an
entry of its own term (the fix to the single-server bug found in 2015), so
any majority of the old voters overlaps any majority of the new ones.

Learners (non-voting members) replicate the log and serve forwarded client
requests like followers, but neither vote nor count toward any quorum; a new
member joins as a learner, catches up, and is then promoted.

The node ids a node may ever talk to are its address book (``--peers``);
a change can only name one of them. The initial configuration makes every
one of them a voter.

`ConfigHistory` keeps the configuration at every log position above the
snapshot, so a truncation or a compaction gives the right one back; the
snapshot carries the configuration at its index.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIONS = ("add-learner", "promote", "remove")
CONFIG = "config"  # the log entry kind


@dataclass(frozen=True)
class Membership:
    voters: tuple[str, ...]
    learners: tuple[str, ...] = ()
    # The voters before the change that made this configuration (None: the initial one). Only the
    # stale-majority bug reads it; it is kept (and snapshotted) so the bug outlives a compaction.
    previous: tuple[str, ...] | None = None

    @property
    def members(self) -> tuple[str, ...]:
        return self.voters + self.learners

    def quorum(self) -> int:
        return len(self.voters) // 2 + 1

    def role_of(self, node: str) -> str:
        return "voter" if node in self.voters else "learner" if node in self.learners else "removed"

    def entry_data(self) -> dict:
        return {"voters": list(self.voters), "learners": list(self.learners)}

    def to_json(self) -> dict:
        out = self.entry_data()
        if self.previous is not None:
            out["previous"] = list(self.previous)
        return out

    @classmethod
    def from_json(cls, doc: dict, previous: tuple[str, ...] | None = None) -> Membership:
        prev = doc.get("previous", previous)
        return cls(tuple(doc["voters"]), tuple(doc.get("learners", ())), None if prev is None else tuple(prev))


def snapshot_membership(snapshot: dict, book: tuple[str, ...]) -> Membership:
    """The configuration a snapshot was taken under (a snapshot from before membership changes names
    only its "members": all voters)."""
    conf = snapshot.get("config")
    if isinstance(conf, dict):
        return Membership.from_json(conf)
    return Membership(tuple(snapshot.get("members") or book))


class ConfigHistory:
    """The configuration at each log index: a base (at or below the snapshot) and one per config entry above it."""

    def __init__(self, base_index: int, base: Membership):
        self.base_index = base_index
        self.base = base
        self.changes: list[tuple[int, Membership]] = []  # (index of the config entry, what it made)

    @property
    def latest(self) -> Membership:
        return self.changes[-1][1] if self.changes else self.base

    @property
    def latest_index(self) -> int:
        """The index of the entry that made the latest configuration (the base's index if none above it)."""
        return self.changes[-1][0] if self.changes else self.base_index

    def at(self, index: int) -> Membership:
        for i, conf in reversed(self.changes):
            if i <= index:
                return conf
        return self.base

    def appended(self, entry: dict) -> bool:
        """Note a log entry; True if it changed the configuration."""
        if entry.get("kind") != CONFIG:
            return False
        self.changes.append((entry["index"], Membership.from_json(entry["data"], previous=self.latest.voters)))
        return True

    def truncated(self, from_index: int) -> bool:
        """Entries from from_index on are gone; True if a configuration went with them."""
        before = len(self.changes)
        self.changes = [(i, c) for i, c in self.changes if i < from_index]
        return len(self.changes) != before

    def compacted(self, index: int) -> None:
        """A snapshot at index now covers everything up to it."""
        self.base, self.base_index = self.at(index), index
        self.changes = [(i, c) for i, c in self.changes if i > index]


def plan_change(conf: Membership, action: str, member: str, book: tuple[str, ...]) -> Membership | str:
    """The configuration that `action` on `member` makes of conf, or the reason it cannot be made:
    "unchanged" (it already holds), "unknown-node", "unknown-action", "already-a-voter", "not-a-learner",
    "last-voter"."""
    if action not in ACTIONS:
        return "unknown-action"
    if member not in book:
        return "unknown-node"
    voters, learners = list(conf.voters), list(conf.learners)
    if action == "add-learner":
        if member in learners:
            return "unchanged"
        if member in voters:
            return "already-a-voter"
        learners.append(member)
    elif action == "promote":
        if member in voters:
            return "unchanged"
        if member not in learners:
            return "not-a-learner"
        learners.remove(member)
        voters.append(member)
    else:
        if member not in voters and member not in learners:
            return "unchanged"
        if member in voters and len(voters) == 1:
            return "last-voter"
        if member in voters:
            voters.remove(member)
        else:
            learners.remove(member)
    order = {n: i for i, n in enumerate(book)}
    return Membership(tuple(sorted(voters, key=order.get)), tuple(sorted(learners, key=order.get)), conf.voters)
