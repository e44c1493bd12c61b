"""Standalone Redis servers, each its own primary: the independent primaries Redlock runs on (see README.md)."""
