"""The two ways a nemesis operation goes wrong."""

from __future__ import annotations


class NemesisError(Exception):
    """A fault could not be injected or healed, or silently did nothing: an infrastructure error (exit 2)."""


class NemesisOpError(ValueError):
    """A malformed nemesis operation (unknown f, unknown node, bad value): a bug in whoever built it."""
