"""`GET /api/consultations/{slug}/results/latest` and the scheduler's job that stores what it
reads, on both databases: the job computes a consultation's results once per interval, the
route answers the stored snapshot (groups, group-informed consensus, representative
statements, the lists, trust, weighting) and never computes one; before the first it is a 404
saying when one comes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.processes import serving
from bots.bootstrap import Runtime
from bots.results_worker import ResultsProcess
from bots.scheduler import scheduler_for
from bots.server import create_app
from bots.settings import Settings
from core.flow import Flow
from core.models import Consultation
from tests.bots.console.dashboard_population import (
    SECRET_ADDRESS,
    compute,
    crowd,
    hold_the_scheduler,
    snapshots,
)
from tests.conftest import Loader
from tests.support import Clock

TOKEN = "organiser-secret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WAIT = 60  # seconds: a guard against a hang, never a pace


@dataclass
class Api:
    url: str
    consultation: Consultation

    async def latest(self, **params: Any) -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.get(
                f"{self.url}/api/consultations/elders/results/latest", params=params, headers=AUTH
            )


@pytest.fixture
async def api(
    database_url: str,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    load_consultation: Loader,
) -> AsyncIterator[Api]:
    await hold_the_scheduler(sessions)  # the server's own scheduler computes nothing
    consultation = await load_consultation()
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="api-results-secret",
        organiser_token=TOKEN,
    )
    async with serving(create_app(settings, channels=[], clock=clock)) as url:
        yield Api(url, consultation)


async def test_before_the_first_snapshot_it_is_a_404_saying_when(api: Api) -> None:
    answer = await api.latest()
    assert answer.status_code == 404
    body = answer.json()
    assert body["code"] == "results.snapshot_not_yet" and body["every_minutes"] == 5
    assert "every 5 minutes" in body["detail"] and "'elders'" in body["detail"]
    async with httpx.AsyncClient() as client:
        anonymous = await client.get(f"{api.url}/api/consultations/elders/results/latest")
        unknown = await client.get(
            f"{api.url}/api/consultations/nowhere/results/latest", headers=AUTH
        )
    assert anonymous.status_code == 401 and unknown.status_code == 404


async def test_the_stored_results_with_groups_trust_and_lists(
    api: Api, sessions: async_sessionmaker[AsyncSession], clock: Clock
) -> None:
    await crowd(sessions, api.consultation, clock)
    await compute(sessions, api.consultation, clock)
    answer = await api.latest(locale="en")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["locale"] == "en" and body["votes_counted"] == "all"
    assert body["participants"] == 24 and body["votes"] == 336
    assert body["groups_reason"] is None and body["clustered"] == 24
    assert [(g["name"], g["size"]) for g in body["groups"]] == [("A", 12), ("B", 12)]
    assert all(1 <= len(g["representative"]) <= 5 for g in body["groups"])
    # Two camps that disagree on everything: nothing is agreed across both groups.
    assert all(p["consensus"]["agree"] < 0.2 for p in body["proposals"] if p["votes"])
    assert len(body["group_informed_consensus"]) == 14
    assert body["trust"] == {
        "exclude_untrusted": False,
        "participants": 24,
        "untrusted": 0,
        "reasons": body["trust"]["reasons"],
        "untrusted_votes": 0,
        "left_out_votes": 0,
    }
    assert body["weighting"] is None  # no margins declared
    listed = body["consensus"] + body["controversies"] + body["rejected"] + body["limbo"]
    assert sorted(listed) == sorted(p["ref"] for p in body["proposals"] if p["votes"])
    assert SECRET_ADDRESS not in answer.text
    french = (await api.latest(locale="fr")).json()
    assert french["locale"] == "fr" and french["proposals"][0]["text"].startswith("Il faut")
    assert await snapshots(sessions) == 1  # read, never computed on a request


async def test_the_scheduler_recomputes_each_interval_only(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    load_consultation: Loader,
) -> None:
    consultation = await load_consultation()
    await crowd(sessions, consultation, clock)
    rt = Runtime(engine, sessions, Flow(sessions, b"secret" * 6, clock=clock))
    settings = Settings(scheduler_every_seconds=3600, results_every_minutes=5)

    async def one_round(holder: str) -> int:
        """A round of the results' job; how many results its child stored."""
        rounds: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        ends: asyncio.Queue[int | None] = asyncio.Queue()
        child = ResultsProcess(
            engine.url.render_as_string(hide_password=False),
            on_exit=lambda _, stored: ends.put_nowait(stored),
        )
        scheduler = scheduler_for(
            rt,
            settings,
            holder=holder,
            on_round=lambda job, n: rounds.put_nowait((job, n)),
            results=child,
        )
        await scheduler.start()
        try:
            while True:
                job, handed = await asyncio.wait_for(rounds.get(), WAIT)
                if job == "results-recompute":
                    break
            return 0 if handed == 0 else await asyncio.wait_for(ends.get(), WAIT) or 0
        finally:
            await scheduler.stop()

    assert await one_round("first") == 1
    assert await snapshots(sessions) == 1
    clock.advance(minutes=4)
    assert await one_round("second") == 0  # the interval has not passed
    clock.advance(minutes=1)
    assert await one_round("third") == 1
    for _ in range(3):
        clock.advance(minutes=5)
        assert await one_round("later") == 1
    assert await snapshots(sessions) == 3  # the older ones are dropped
