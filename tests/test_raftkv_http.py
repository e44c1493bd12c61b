"""The raftkv HTTP API: requests parse and route as the issue specifies; malformed ones get 400 JSON."""

import asyncio
import http.client
import json
import socket
import threading

import pytest

from targets.raftkv.httpapi import HttpApi, HttpError, Request, parse_request, route


def req(method, target, body=b"", headers=None):
    head = f"{method} {target} HTTP/1.1\r\nHost: x\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    if body or method in ("PUT", "POST"):
        head += f"Content-Length: {len(body)}\r\n"
    return bytearray(head.encode() + b"\r\n" + body)


def routed(method, target, body=None):
    raw = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    r = parse_request(req(method, target, raw))
    return route(r)


def test_get_put_and_cas_become_node_operations():
    assert routed("GET", "/kv/k1").op == {"f": "get", "key": "k1"}
    assert routed("PUT", "/kv/k1", {"value": 5}).op == {
        "f": "put", "key": "k1", "value": 5, "request_id": None}
    assert routed("POST", "/kv/k1/cas", {"from": 1, "to": 2, "request_id": "c7"}).op == {
        "f": "cas", "key": "k1", "from": 1, "to": 2, "request_id": "c7"}


def test_keys_are_url_decoded():
    assert routed("GET", "/kv/a%2Fb%20c").op["key"] == "a/b c"
    assert routed("POST", "/kv/x%2Fcas/cas", {"from": 1, "to": 2}).op["key"] == "x/cas"
    assert routed("GET", "/kv/%C3%A9").op["key"] == "é"


def test_status_and_metrics_routes():
    assert routed("GET", "/status").kind == "status"
    assert routed("GET", "/metrics").kind == "metrics"


@pytest.mark.parametrize("method,target,body,status", [
    ("PUT", "/kv/k", b"{not json", 400),
    ("PUT", "/kv/k", b"[1]", 400),
    ("PUT", "/kv/k", {"val": 1}, 400),
    ("POST", "/kv/k/cas", {"from": 1}, 400),
    ("PUT", "/kv/k", {"value": 1, "request_id": [1]}, 400),
    ("GET", "/kv/", None, 400),
    ("GET", "/kv/%FF", None, 400),
    ("GET", "/nope", None, 404),
    ("POST", "/kv/k", {"from": 1, "to": 2}, 404),
    ("DELETE", "/kv/k", None, 405),
    ("PUT", "/status", {"value": 1}, 405),
])
def test_malformed_requests_get_a_json_error(method, target, body, status):
    with pytest.raises(HttpError) as e:
        routed(method, target, body)
    assert e.value.status == status
    assert "error" in e.value.body


def test_the_parser_waits_for_the_whole_request_and_leaves_the_next_one():
    full = req("PUT", "/kv/k", b'{"value": 1}') + req("GET", "/kv/k")
    buf = bytearray(full[:20])
    assert parse_request(buf) is None
    buf = bytearray(full[:-3])
    first = parse_request(buf)
    assert first.method == "PUT" and first.body == b'{"value": 1}'
    assert parse_request(buf) is None  # the second is still incomplete
    buf += full[-3:]
    assert parse_request(buf).target == "/kv/k"
    assert buf == bytearray()


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET /kv/k HTTP/1.1\r\nno colon here\r\n\r\n",
    b"PUT /kv/k HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"PUT /kv/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
])
def test_malformed_heads_are_rejected(raw):
    with pytest.raises(HttpError) as e:
        parse_request(bytearray(raw))
    assert e.value.status == 400


def test_keep_alive_defaults_follow_the_http_version():
    assert Request("GET", "/", "HTTP/1.1", {}, b"").keep_alive
    assert not Request("GET", "/", "HTTP/1.1", {"connection": "close"}, b"").keep_alive
    assert not Request("GET", "/", "HTTP/1.0", {}, b"").keep_alive
    assert Request("GET", "/", "HTTP/1.0", {"connection": "Keep-Alive"}, b"").keep_alive


def test_the_server_answers_with_the_node_reply_over_one_keep_alive_connection():
    store = {}

    async def submit(op):
        if op["f"] == "put":
            store[op["key"]] = op["value"]
            return 200, {}
        if op["key"] in store:
            return 200, {"value": store[op["key"]]}
        return 404, {"error": "not-found"}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    api = HttpApi(submit, lambda: {"id": "n1", "role": "leader"}, lambda: "raftkv_term 3\n")
    loop.run_until_complete(api.start("127.0.0.1", port))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/kv/a%20b")
        r = conn.getresponse()
        assert (r.status, json.loads(r.read())) == (404, {"error": "not-found"})
        conn.request("PUT", "/kv/a%20b", body=json.dumps({"value": 7}))
        r = conn.getresponse()
        assert (r.status, json.loads(r.read())) == (200, {})
        conn.request("GET", "/kv/a%20b")
        r = conn.getresponse()
        assert json.loads(r.read()) == {"value": 7}
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        assert r.read() == b"raftkv_term 3\n"
        conn.request("PUT", "/kv/k", body=b"{oops")
        r = conn.getresponse()
        assert r.status == 400 and json.loads(r.read())["error"] == "bad-request"
        conn.close()
    finally:
        asyncio.run_coroutine_threadsafe(api.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


# -- fuzzing: whatever bytes arrive, the parser and router only ever answer or raise HttpError

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

request_lines = st.sampled_from([b"GET /kv/k HTTP/1.1", b"PUT /kv/%41 HTTP/1.1",
                                 b"POST /kv/a/cas HTTP/1.0", b"GET /status HTTP/1.1", b"X"])
header_lines = st.lists(st.one_of(
    st.sampled_from([b"Content-Length: 2", b"Content-Length: -1", b"Connection: close",
                     b"Transfer-Encoding: chunked", b"Content-Length: 99999999999"]),
    st.binary(max_size=30)), max_size=4)


@settings(max_examples=300, deadline=None)
@given(request_lines, header_lines, st.binary(max_size=64), st.binary(max_size=64))
def test_any_bytes_parse_to_a_request_nothing_yet_or_an_http_error(line, headers, body, tail):
    raw = bytearray(b"\r\n".join([line, *headers]) + b"\r\n\r\n" + body + tail)
    try:
        while True:
            before = len(raw)
            r = parse_request(raw)
            if r is None:
                break
            assert len(raw) < before  # every request consumes bytes: no livelock
            try:
                route(r)
            except HttpError:
                pass
    except HttpError as e:
        assert e.status in (400, 413)


def test_a_client_that_expects_100_continue_is_told_to_go_on():
    from targets.raftkv.httpapi import expects_continue
    head = bytearray(b"PUT /kv/k HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 12\r\n\r\n")
    assert expects_continue(head) and parse_request(head) is None
    assert not expects_continue(bytearray(b"PUT /kv/k HTTP/1.1\r\nContent-Length: 12\r\n\r\n"))
    assert not expects_continue(bytearray(b"PUT /kv/k HTTP/1.1\r\nExpect: 100-continue\r\n"))


def test_failpoint_routes():
    assert routed("GET", "/failpoints").kind == "failpoints"
    assert routed("PUT", "/failpoints/crash-after-vote").op == {"name": "crash-after-vote", "on": True}
    assert routed("DELETE", "/failpoints/crash-after-vote").op == {"name": "crash-after-vote", "on": False}
    with pytest.raises(HttpError) as e:
        routed("POST", "/failpoints/crash-after-vote")
    assert e.value.status == 405


def test_failpoints_answer_only_a_node_started_with_them():
    from targets.raftkv.failpoints import Failpoints

    async def submit(op):
        raise AssertionError("a failpoint request is not a node operation")

    def answer(api, method, target):
        try:
            return api._failpoint(route(parse_request(req(method, target))))
        except HttpError as e:
            return e.status, e.body

    off = HttpApi(submit, dict, str)
    assert answer(off, "PUT", "/failpoints/crash-after-vote")[1]["error"] == "failpoints-disabled"
    fp = Failpoints(enabled=True)
    on = HttpApi(submit, dict, str, fp)
    status, body = answer(on, "PUT", "/failpoints/crash-after-vote")
    assert status == 200 and body["crash-after-vote"]["armed"] and fp.armed == {"crash-after-vote"}
    assert answer(on, "GET", "/failpoints")[1]["crash-after-vote"]["armed"]
    answer(on, "DELETE", "/failpoints/crash-after-vote")
    assert fp.armed == set()
    status, body = answer(on, "PUT", "/failpoints/crash-before-lunch")
    assert status == 404 and body["error"] == "no-such-failpoint" and "crash-after-vote" in body["detail"]


# ---- hostile requests (issue 17): refused before they reach the node --------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from targets.raftkv import httpapi  # noqa: E402


@pytest.mark.parametrize("raw, says", [
    (b"PUT /kv/k HTTP/1.1\r\nContent-Length: +1_2\r\n\r\n", "bad Content-Length"),
    (b"PUT /kv/k HTTP/1.1\r\nContent-Length:  12 3\r\n\r\n", "bad Content-Length"),
    (b"PUT /kv/k HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
    (b"PUT /kv/k HTTP/1.1\r\nContent-Length: " + b"9" * 40 + b"\r\n\r\n", "bad Content-Length"),
    (b"PUT /kv/k HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 20\r\n\r\n{}", "more than one Content-Length"),
])
def test_a_content_length_is_digits_and_only_one(raw, says):
    with pytest.raises(HttpError, match=says) as e:
        parse_request(bytearray(raw))
    assert e.value.status == 400


def test_a_head_over_the_limit_is_refused_even_when_it_arrives_whole_with_its_body():
    head = b"GET /kv/k HTTP/1.1\r\nX-Pad: " + b"a" * (httpapi.MAX_HEAD_BYTES + 6 * 1024) + b"\r\n\r\n"
    with pytest.raises(HttpError) as e:
        parse_request(bytearray(head))
    assert e.value.status == 413


def test_a_body_over_the_limit_and_json_nested_too_deep_are_413_before_parsing():
    with pytest.raises(HttpError) as e:
        parse_request(req("PUT", "/kv/k", b"x" * (httpapi.MAX_BODY_BYTES + 1)))
    assert e.value.status == 413
    deep = b'{"value": ' + b"[" * 975 + b"]" * 975 + b"}"  # 2 KB: it made a node exit before
    with pytest.raises(HttpError, match="nested deeper") as e:
        routed("PUT", "/kv/k", deep)
    assert e.value.status == 413
    ok = {"value": json.loads("[" * 60 + "]" * 60), "request_id": "r"}
    assert routed("PUT", "/kv/k", ok).op["value"] == ok["value"]
    with pytest.raises(HttpError, match="not valid JSON"):  # a 5000-digit number: int() refuses it
        routed("PUT", "/kv/k", b'{"value": ' + b"7" * 5000 + b"}")


def _depth(v) -> int:
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\x'), inner, max_size=3),
    max_leaves=200)


@settings(max_examples=300, deadline=None)
@given(value=json_values, limit=st.integers(0, 12))
def test_the_nesting_check_agrees_with_the_depth_of_any_value(value, limit):
    assert httpapi.nesting_exceeds(json.loads(json.dumps(value)), limit) == (_depth(value) > limit)


def test_nesting_far_past_python_s_recursion_limit_is_checked_without_recursing():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert httpapi.nesting_exceeds(deep, 64) and not httpapi.nesting_exceeds([[1]], 2)


class _Serving:
    """An HttpApi on a loopback port, served on a thread; closed (sockets, server, loop) on exit."""

    def __init__(self, api):
        self.api = api
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(api.start("127.0.0.1", self.port))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.api.close(), self.loop).result(5)
        asyncio.run_coroutine_threadsafe(self.api._server.wait_closed(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def _ok(op):
    return 200, {}


def test_a_head_dribbled_too_slowly_is_hung_up_on_and_a_connection_over_the_cap_gets_503(monkeypatch):
    import time

    monkeypatch.setattr(httpapi, "HEAD_TIMEOUT_S", 0.3)
    monkeypatch.setattr(httpapi, "MAX_CONNECTIONS", 3)
    with _Serving(HttpApi(_ok, dict, str)) as served:
        port = served.port
        slow = socket.create_connection(("127.0.0.1", port), timeout=5)
        slow.sendall(b"GET /kv/k HTTP/1.1\r\n")  # a head begun, never finished (slowloris)
        started = time.monotonic()
        assert slow.recv(100) == b""  # closed by the server
        assert time.monotonic() - started < 3
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        time.sleep(0.1)
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert extra.recv(200).startswith(b"HTTP/1.1 503")
        for s in held + [extra, slow]:
            s.close()
