"""A run's reaper: a watcher process that removes the run's containers and network when its harness dies first.

A harness that ends normally, by an exception, by Ctrl-C or by SIGTERM tears
its cluster down itself. One killed with SIGKILL (by hand, by the OOM
killer, by a CI job's timeout) cannot, and its nodes would run on until
someone ran `splitbrain clean`. testcontainers solves this with Ryuk, a
container that holds a connection from the test process and removes what it
made when the connection drops; this is the same idea without a container:

- before the run's network is made, the harness starts
  `python -m harness.reaper RUN_ID` in a session of its own (so a Ctrl-C to
  the harness's process group does not reach it) with the read end of a
  pipe as its stdin; only the harness holds the write end;
- the reaper blocks reading that pipe. When the harness dies, however it
  dies, the kernel closes the write end and the reaper reads end-of-file:
  it removes everything labelled with the run id (twice, a second later, for
  a container whose creation was in flight), and exits;
- a harness that tears down on its own writes `done` first, and the reaper
  exits without touching anything.

The reaper removes only its own run's things, by its run id, never another's.
SPLITBRAIN_REAPER=0 turns it off (then `splitbrain clean` is the way).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

DONE = b"done\n"
SECOND_SWEEP_S = 1.0  # a container create in flight when the harness died lands after the first sweep


class Reaper:
    """The harness's end of a started reaper: `disarm()` at a normal teardown."""

    def __init__(self, proc: subprocess.Popen | None, write_fd: int | None):
        self.proc = proc
        self._fd = write_fd

    def disarm(self) -> None:
        """The harness removed its cluster itself: the reaper is to leave it alone and exit."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.write(fd, DONE)
        except OSError:
            pass  # the reaper is gone already: nothing to tell it
        finally:
            os.close(fd)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def enabled() -> bool:
    return os.environ.get("SPLITBRAIN_REAPER", "1") not in ("0", "off", "no", "false")


def start(run_id: str, log_file: Path | None = None, engines: list[str] | None = None) -> Reaper:
    """Start the reaper of run_id (or a disarmed stand-in when SPLITBRAIN_REAPER=0); it cleans every one of
    `engines` (harness/engines.py names; default: the environment's engine)."""
    if not enabled():
        return Reaper(None, None)
    read_fd, write_fd = os.pipe()  # not inherited by the harness's other children (PEP 446)
    err = open(log_file, "ab") if log_file is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        names = [e or "default" for e in (engines or [])]
        proc = subprocess.Popen([sys.executable, "-m", "harness.reaper", run_id, *names], stdin=read_fd,
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": _import_path()})
    finally:
        os.close(read_fd)
        if err is not subprocess.DEVNULL:
            err.close()
    return Reaper(proc, write_fd)


def _import_path() -> str:
    """This checkout first, so the reaper runs the same splitbrain as its harness."""
    here = str(Path(__file__).resolve().parent.parent)
    rest = os.environ.get("PYTHONPATH")
    return here + (os.pathsep + rest if rest else "")


def watch(stdin, remove: Callable[[], tuple[int, int]], sleep: Callable[[float], None] = time.sleep) -> str:
    """Block until the harness says done or dies; remove its run if it died. What happened, as a word."""
    said = b""
    while True:
        chunk = stdin.read(64)
        if not chunk:
            break
        said += chunk
    if said.startswith(DONE):
        return "disarmed"
    remove()
    sleep(SECOND_SWEEP_S)
    remove()
    return "reaped"


def main(argv: list[str]) -> int:
    if not argv or not argv[0]:
        print("usage: python -m harness.reaper RUN_ID [ENGINE...] (started by the harness, with a pipe as stdin)",
              file=sys.stderr)
        return 2
    run_id, names = argv[0], argv[1:] or ["default"]

    def remove() -> tuple[int, int]:
        from harness import engines
        from harness.labels import clean

        total = [0, 0]
        for name in names:
            try:
                got = clean(run_id, client=engines.connect(name))
                total = [total[0] + got[0], total[1] + got[1]]
            except Exception as e:  # that engine is gone too: nothing more a reaper can do there
                print(f"splitbrain reaper {run_id}: engine {name}: {type(e).__name__}: {e}", file=sys.stderr)
        if len(names) > 1:
            engines.close_forwarding(run_id)  # a no-op where the run opened none
        return total[0], total[1]

    what = watch(sys.stdin.buffer, remove)
    if what == "reaped":
        print(f"splitbrain reaper {run_id}: its harness died; removed its containers and network", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
