"""What every self-contained page shares (a run's report, the store's index): templates, inlined files, safe JSON.

Its own module so that reports.render (which refreshes the index after a
report) and reports.index both use it without importing each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).parent


def environment(**options: Any) -> Environment:
    """A Jinja2 environment on reports/templates, autoescaping (histories carry whatever values a client wrote)."""
    return Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html", "j2"]),
                       **options)


def static(name: str) -> str:
    """A file of reports/static, to inline in a page (pages open from file:// with no network)."""
    return (HERE / "static" / name).read_text()


def embed_json(data: Any) -> str:
    """JSON safe inside <script type="application/json">: no '</' can close the tag early."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")
