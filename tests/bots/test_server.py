"""`consult serve`: uvicorn on a local port, the database migrated on start, /healthz."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.bots.test_cli import ROOT, run


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_server_starts_migrates_and_reports_health(database_url: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "CONSULT_DATABASE_URL": database_url, "CONSULT_DATA_DIR": str(tmp_path)}
    server = subprocess.Popen(
        [sys.executable, "-m", "bots.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
                assert time.monotonic() < deadline, "the server did not start within 60 s"
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/nowhere", timeout=2).status_code == 404
    finally:
        server.terminate()
        server.communicate(timeout=30)  # also closes the output pipe


def test_bad_serve_arguments_exit_2(tmp_path: Path) -> None:
    result = run(["serve", "--port", "70000"], f"sqlite:///{tmp_path / 'db'}", tmp_path)
    assert result.returncode == 2 and "--port must be between 1 and 65535" in result.stderr
