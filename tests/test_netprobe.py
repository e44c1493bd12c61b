"""The connect probe says what it saw, or fails with a sentence: never an IndexError from an empty answer."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from nemesis.netprobe import PROBE_ATTEMPTS, connect_probe, probe_addresses


class Exec:
    """A node whose `docker exec` gives these (rc, output) answers in turn."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def exec_netns(self, node, cmd):
        self.calls += 1
        return self.answers.pop(0)


def test_an_empty_answer_is_asked_again_and_the_next_good_one_is_used():
    cluster = Exec((0, ""), (0, '{"10.0.0.2:7000": "timeout"}\n'))
    assert connect_probe(cluster, "n1", ["10.0.0.2"], 7000) == {"10.0.0.2": "timeout"}
    assert cluster.calls == 2


def test_a_probe_that_never_answers_fails_with_a_sentence_naming_the_node():
    cluster = Exec(*[(0, "")] * PROBE_ATTEMPTS)
    with pytest.raises(RuntimeError, match=f"connect probe from n1 printed no answer {PROBE_ATTEMPTS} times"):
        connect_probe(cluster, "n1", ["10.0.0.2"], 7000)


def test_garbage_is_not_an_answer_either():
    cluster = Exec((0, "Traceback...\nMemoryError"), (0, "[1, 2]"), (0, '{"10.0.0.2:7000": "open"}'))
    assert connect_probe(cluster, "n1", ["10.0.0.2"], 7000) == {"10.0.0.2": "open"}


def test_a_probe_that_fails_outright_is_not_asked_again():
    cluster = Exec((1, "python3: not found"))
    with pytest.raises(RuntimeError, match="exit 1"):
        connect_probe(cluster, "n1", ["10.0.0.2"], 7000)
    assert cluster.calls == 1


def test_the_probe_script_itself_tells_an_open_port_from_a_refused_one():
    def run_here(cmd):
        done = subprocess.run([sys.executable, *cmd[1:]], capture_output=True, text=True, timeout=30)
        return done.returncode, done.stdout

    with socket.socket() as listening, socket.socket() as unused:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        unused.bind(("127.0.0.1", 0))  # bound, not listening: a connect is refused
        open_, closed = (f"127.0.0.1:{s.getsockname()[1]}" for s in (listening, unused))
        assert probe_addresses(run_here, [open_, closed], 2.0) == {open_: "open", closed: "refused"}
