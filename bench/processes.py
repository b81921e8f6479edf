"""Running servers on a free local port for benchmarks and end-to-end tests: as a real
process (`running`, `consult_server`), or under uvicorn in the caller's event loop (`serving`)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent


def tcp_listener() -> socket.socket:
    """A socket bound to a free port of 127.0.0.1, for a server run on the standard asyncio loop.

    asyncio turns Nagle's algorithm off only on connections of a socket whose protocol number
    says TCP, which `socket.socket()` leaves at 0. With Nagle on, a response written in two
    parts (uvicorn writes headers, then body) waits for the client's delayed ACK: 40 ms per
    request on Linux, which every fake Bot API call paid. (uvloop, which `consult serve` runs
    on, turns it off itself.)
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    return listener


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Served:
    """A server process: its base URL and process id."""

    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the process, its threads and its living
        children (uvicorn's worker processes) (Linux)."""
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rpartition(")")[2].split()
                except OSError:  # gone meanwhile
                    continue
                stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
        tree = {self.pid}
        while grown := {pid for pid, (parent, _) in stats.items() if parent in tree} - tree:
            tree |= grown
        ticks = sum(stats[pid][1] for pid in tree if pid in stats)
        return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def running(
    command: Sequence[str], env: dict[str, str], port: int, *, ready: str = "/healthz"
) -> Iterator[Served]:
    """Run `command` (which listens on `port`) with `env` added to this environment; yield it
    once `ready` answers 200, stop it on exit. If it fails to start, or the block raises, the
    end of its output is shown."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - not a pipe: a full pipe would block the server
    process = subprocess.Popen(
        list(command), cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}{ready}", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(command)} did not start")
            time.sleep(0.2)
        yield Served(url, process.pid)
    except BaseException:
        log.seek(0)
        print(log.read().decode(errors="replace")[-5000:], file=sys.stderr)
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def consult_server(
    env: dict[str, str], *, workers: int = 1, options: Sequence[str] = ()
) -> Iterator[str]:
    """`consult serve` on a free port, as a newcomer would run it; yields its base URL."""
    with consult_process(env, workers=workers, options=options) as served:
        yield served.url


@contextmanager
def consult_process(
    env: dict[str, str], *, workers: int = 1, options: Sequence[str] = ()
) -> Iterator[Served]:
    """`consult serve`, with the process (and its CPU time) at hand."""
    port = free_port()
    command = [sys.executable, "-m", "bots.cli", "serve", "--port", str(port)]
    command += ["--workers", str(workers), *options]
    with running(command, env, port) as served:
        yield served


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Run an ASGI app under uvicorn in this event loop on a free port; yields its base URL.

    In the caller's loop, a fake's records can be read without locks or threads.
    """
    listener = tcp_listener()
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, log_level="warning", ws="none", interface="asgi3")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped the server
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        listener.close()
