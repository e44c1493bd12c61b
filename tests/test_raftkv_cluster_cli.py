"""Starting a raftkv node wrong gives one line on stderr and exit 2, never a traceback."""

import pytest

from targets.raftkv.__main__ import build_parser, main
from targets.raftkv.node import BUGS
from targets.raftkv.storage import Storage


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "key"
    path.write_text("secret\n")
    return str(path)


def args(tmp_path, key_file, **over):
    base = {"--id": "n1", "--peers": "n1=127.0.0.1:1,n2=127.0.0.1:2,n3=127.0.0.1:3",
            "--client": "127.0.0.1:4", "--data": str(tmp_path / "data"),
            "--cluster-key-file": key_file}
    base.update(over)
    out = []
    for k, v in base.items():
        if v is not None:
            out += [k, v]
    return out


def one_line_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("raftkv: error: "), err
    return err


@pytest.mark.parametrize("over,fragment", [
    ({"--id": "n9"}, "not in --peers"),
    ({"--peers": "n1=127.0.0.1"}, "HOST:PORT"),
    ({"--peers": "n1=127.0.0.1:1,n1=127.0.0.1:2"}, "twice"),
    ({"--client": "nowhere"}, "--client"),
    ({"--election-timeout": "300-150"}, "--election-timeout"),
    ({"--election-timeout": "fast"}, "--election-timeout"),
    ({"--heartbeat": "soon"}, "--heartbeat"),
    ({"--bug": "no-such-bug"}, "--bug"),
    ({"--data": None}, "--data"),
])
def test_bad_flags_are_one_line_and_exit_2(tmp_path, key_file, capsys, over, fragment):
    assert fragment in one_line_error(capsys, args(tmp_path, key_file, **over))


def test_an_unreadable_key_file_is_one_line_and_exit_2(tmp_path, key_file, capsys):
    err = one_line_error(capsys, args(tmp_path, key_file, **{"--cluster-key-file": "/nonexistent/key"}))
    assert "cluster key file" in err


def test_a_data_dir_from_another_version_is_one_line_and_exit_2(tmp_path, key_file, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "FORMAT").write_text("splitbrain-raftkv-storage 0\n")
    assert "format" in one_line_error(capsys, args(tmp_path, key_file))


def test_a_taken_port_is_one_line_and_exit_2(tmp_path, key_file, capsys):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        argv = args(tmp_path, key_file, **{"--peers": f"n1=127.0.0.1:{port},n2=127.0.0.1:2"})
        assert "cannot listen" in one_line_error(capsys, argv)
    Storage(tmp_path / "data").open()  # the data dir was left usable


def test_help_lists_every_bug_with_its_description():
    text = build_parser().format_help()
    for name, description in BUGS.items():
        assert name in text
        assert description[:40] in text


def test_a_data_dir_held_by_a_running_node_is_one_line_and_exit_2(tmp_path, key_file, capsys):
    holder = Storage(tmp_path / "data")
    holder.open()
    try:
        assert "in use" in one_line_error(capsys, args(tmp_path, key_file))
    finally:
        holder.close()


def test_bugs_can_be_named_after_one_flag_or_by_repeating_it(tmp_path, key_file):
    from targets.raftkv.__main__ import config_from_args
    one = config_from_args(args(tmp_path, key_file) + ["--bug", "stale-read", "no-persist-vote"])
    two = config_from_args(args(tmp_path, key_file) + ["--bug", "stale-read", "--bug", "no-persist-vote"])
    assert one.node.bugs == two.node.bugs == frozenset({"stale-read", "no-persist-vote"})
