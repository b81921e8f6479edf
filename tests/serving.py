"""Running `consult serve` for end-to-end tests: a real process on a free local port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def consult_server(env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """`consult serve` with `env` added to this environment; yields its base URL once
    /healthz answers, and stops it on exit (its output is shown if it failed to start)."""
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - not a pipe: a full pipe would block the server's logging
    server = subprocess.Popen(
        [sys.executable, "-m", "bots.cli", "serve", "--port", str(port), "--workers", str(workers)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise AssertionError(f"consult serve did not start:\n{log.read().decode()}")
            time.sleep(0.2)
        yield url
    except BaseException:
        log.seek(0)
        print(log.read().decode()[-5000:])  # the server's side of a failed test
        raise
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
