"""Servers run by tests and benchmarks on the standard asyncio loop answer without Nagle's delay."""

from __future__ import annotations

import asyncio
import socket

from bench.processes import tcp_listener


async def test_connections_of_a_tcp_listener_send_small_writes_at_once() -> None:
    # With Nagle's algorithm on, a response written in two parts waits for the client's delayed
    # ACK (40 ms on Linux); asyncio turns it off only for a socket that says it is TCP.
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def connected(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    listener = tcp_listener()
    host, port = listener.getsockname()
    assert host == "127.0.0.1"
    server = await asyncio.start_server(connected, sock=listener)
    async with server:
        _, writer = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(accepted, 5) != 0
        writer.close()
