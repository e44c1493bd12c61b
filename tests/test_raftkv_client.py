"""raftkv's HTTP client never reuses a connection with unread bytes: a server that answers once twice makes
the operation `info` with the reason, and the next operation reads its own answer, never the stale one."""

from __future__ import annotations

import asyncio
import json

from targets.raftkv.plugin import RaftKVClient


def response(value: str) -> bytes:
    body = json.dumps({"value": value}).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


async def serve_answering_first_request_twice(duplicate_after: float | None):
    """A loopback server that answers request i with "answer-i"; request 1 gets a second copy of its answer,
    in the same write (duplicate_after None) or that many seconds later."""
    count = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                count += 1
                answer = response(f"answer-{count}")
                if count == 1 and duplicate_after is None:
                    writer.write(answer + answer)
                else:
                    writer.write(answer)
                if count == 1 and duplicate_after is not None:
                    await asyncio.sleep(duplicate_after)
                    writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


def reads(duplicate_after: float | None, pause: float = 0.0) -> list[dict]:
    async def main():
        server, address = await serve_answering_first_request_twice(duplicate_after)
        client = RaftKVClient({"n1": address}, timeout=2.0)
        try:
            first = await client.invoke("n1", {"f": "read", "key": "x"})
            await asyncio.sleep(pause)
            second = await client.invoke("n1", {"f": "read", "key": "x"})
            return [first, second]
        finally:
            await client.close()
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


def test_an_answer_with_extra_bytes_is_info_with_the_reason_and_the_next_read_gets_its_own_answer():
    first, second = reads(duplicate_after=None)
    assert first["type"] == "info"
    assert "protocol violation" in first["error"] and "GET /kv/x" in first["error"]
    assert second == {"type": "ok", "value": "answer-2", "error": None}


def test_a_duplicate_that_arrives_while_the_connection_is_idle_is_never_read_as_the_next_answer():
    first, second = reads(duplicate_after=0.05, pause=0.3)
    assert first == {"type": "ok", "value": "answer-1", "error": None}
    assert second == {"type": "ok", "value": "answer-2", "error": None}, "the stale answer-1 was read as the reply"


def test_a_clean_keep_alive_connection_is_still_reused():
    async def main():
        opened = 0

        async def handle(reader, writer):
            nonlocal opened
            opened += 1
            try:
                while True:
                    await reader.readuntil(b"\r\n\r\n")
                    writer.write(response("v"))
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        client = RaftKVClient({"n1": f"127.0.0.1:{server.sockets[0].getsockname()[1]}"})
        try:
            outcomes = [await client.invoke("n1", {"f": "read", "key": "x"}) for _ in range(5)]
        finally:
            await client.close()
            server.close()
            await server.wait_closed()
        return outcomes, opened

    outcomes, opened = asyncio.run(main())
    assert all(o["type"] == "ok" for o in outcomes)
    assert opened == 1
