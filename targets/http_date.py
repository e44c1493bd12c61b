"""A node's clock as its HTTP server states it: the Date header, for mapping node logs onto the report's timeline."""

from __future__ import annotations

from email.utils import parsedate_to_datetime


def wall_time(date_header: str | None) -> float | None:
    """Seconds since the epoch on the server's clock, from a Date header (whole seconds: +0.5 s,
    the middle of the second it names); None if there is none or it does not parse."""
    if not date_header:
        return None
    try:
        return parsedate_to_datetime(date_header).timestamp() + 0.5
    except (TypeError, ValueError):
        return None
