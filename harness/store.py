"""The store of runs: one folder per run, store/<test>/<timestamp>/, and store/latest pointing at the newest.

A run folder holds history.jsonl (written as the run goes), spec.yaml (the
resolved spec, enough to reproduce the run), results.json (verdicts, counts,
timings) and logs/ (each node's log, copied before teardown).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HISTORY = "history.jsonl"
SPEC = "spec.yaml"
RESULTS = "results.json"
LOGS = "logs"
REPORT = "report.html"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "test"


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @property
    def history(self) -> Path:
        return self.path / HISTORY

    @property
    def spec(self) -> Path:
        return self.path / SPEC

    @property
    def results(self) -> Path:
        return self.path / RESULTS

    @property
    def logs(self) -> Path:
        return self.path / LOGS

    @property
    def report(self) -> Path:
        return self.path / REPORT

    def write_spec(self, text: str) -> None:
        self.spec.write_text(text)

    def write_results(self, results: dict[str, Any]) -> None:
        tmp = self.results.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=2, default=_json_default, allow_nan=False) + "\n")
        os.replace(tmp, self.results)


def _json_default(o: Any) -> Any:
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(o)
    return repr(o)


def new_stamped_folder(parent: Path, now: datetime | None = None) -> Path:
    """A new empty folder `parent/<UTC timestamp>` (suffixed -2, -3... if taken), with logs/ in it."""
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S") + f".{now.microsecond // 1000:03d}Z"
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / stamp
    n = 1
    while True:
        try:
            path.mkdir()
            break
        except FileExistsError:  # another run started in the same millisecond
            n += 1
            path = parent / f"{stamp}-{n}"
    (path / LOGS).mkdir()
    return path


def create_run_folder(store: str | os.PathLike[str], test: str, now: datetime | None = None) -> RunFolder:
    """A new empty run folder for `test`, and store/latest (and store/<test>/latest) pointing at it."""
    root = Path(store)
    test_dir = root / _safe(test)
    path = new_stamped_folder(test_dir, now)
    point_latest(root / "latest", os.path.relpath(path, root))
    point_latest(test_dir / "latest", path.name)
    return RunFolder(path)


def point_latest(link: Path, target: str) -> None:
    """Atomically make `link` a symlink to `target` (relative)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.replace(tmp, link)
