"""`consult serve`: uvicorn on a local port, the database migrated on start, /healthz."""

from __future__ import annotations

from pathlib import Path

import httpx

from bench.processes import consult_server
from tests.bots.test_cli import run


def test_the_server_starts_migrates_and_reports_health(database_url: str, tmp_path: Path) -> None:
    env = {"CONSULT_DATABASE_URL": database_url, "CONSULT_DATA_DIR": str(tmp_path)}
    with consult_server(env) as url:  # it waits for /healthz to answer 200
        response = httpx.get(f"{url}/healthz", timeout=2)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok"}
        assert httpx.get(f"{url}/nowhere", timeout=2).status_code == 404


def test_bad_serve_arguments_exit_2(tmp_path: Path) -> None:
    result = run(["serve", "--port", "70000"], f"sqlite:///{tmp_path / 'db'}", tmp_path)
    assert result.returncode == 2 and "--port must be between 1 and 65535" in result.stderr
