"""The dashboard's Results and Live pages over real HTTP, on both databases: they read the
stored snapshot and never compute one, say when the first comes, draw their charts as
accessible SVG, filter by segment, trust and weighting, refuse a filter naming nothing with a
message listing what exists, and name no participant."""

from __future__ import annotations

import re
from html import unescape

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Consultation
from core.organisers import Role
from tests.bots.console.conftest import ConsoleServer
from tests.bots.console.dashboard_population import (
    SECRET_ADDRESS,
    compute,
    crowd,
    hold_the_scheduler,
    snapshots,
)


@pytest.fixture
async def held(sessions: async_sessionmaker[AsyncSession]) -> None:
    """The scheduler's lease held by the test before the server starts (see the population)."""
    await hold_the_scheduler(sessions)


async def _analyst(server: ConsoleServer) -> httpx.AsyncClient:
    return await server.signed_in("ana@example.org", Role.ANALYST)


async def test_before_the_first_snapshot_the_pages_say_when_it_comes(
    held: None, server: ConsoleServer
) -> None:
    client = await _analyst(server)
    for page in ("results", "live"):
        answer = await client.get(f"{server.console}/c/elders/{page}")
        assert answer.status_code == 200, answer.text
        assert "No results computed yet" in answer.text
        assert "within 5 minutes" in answer.text
    assert await snapshots(server.sessions) == 0  # a page view computed nothing


async def test_the_results_page_reads_the_stored_snapshot(
    held: None, server: ConsoleServer
) -> None:
    await crowd(server.sessions, server.consultation, server.clock)
    await compute(server.sessions, server.consultation, server.clock)
    client = await _analyst(server)
    page = await client.get(f"{server.console}/c/elders/results")
    assert page.status_code == 200, page.text
    html = page.text
    for heading in ("Consensus", "Controversies", "Rejected", "Opinion groups"):
        assert heading in html
    # One bar per listed proposal, each an image with its title and description.
    bars = re.findall(r'<svg class="chart split" role="img"', html)
    assert len(bars) == 14
    assert html.count("<title id=") == html.count("<desc id=") == 15  # and the map
    assert '<svg class="chart map"' in html and "Group A: 12 participants" in html
    assert "Group B: 12 participants" in html
    assert "Group-informed consensus" in html
    assert "Trust: 0 of 24 participants untrusted" in html
    assert SECRET_ADDRESS not in html and "0" * 63 + "1" not in html
    assert await snapshots(server.sessions) == 1  # read, not computed again

    french = await client.get(f"{server.console}/language", params={"to": "fr", "back": "/"})
    assert french.status_code in (200, 303)
    page = await client.get(f"{server.console}/c/elders/results")
    text = unescape(page.text)
    assert "Groupes d'opinion" in text and "Consensus entre les groupes" in text
    assert "Il faut" in text  # the proposals in the organiser's language


async def test_the_segment_filter_shows_one_answer_or_one_group(
    held: None, server: ConsoleServer
) -> None:
    await crowd(server.sessions, server.consultation, server.clock)
    await compute(server.sessions, server.consultation, server.clock)
    client = await _analyst(server)
    results = f"{server.console}/c/elders/results"
    everyone = await client.get(results)
    assert 'value="q:age:young"' in everyone.text and 'value="g:0"' in everyone.text
    for segment in ("q:age:young", "q:age:old", "g:0", "g:1"):
        answer = await client.get(results, params={"segment": segment})
        assert answer.status_code == 200, (segment, answer.text)
        assert f'value="{segment}" selected' in answer.text
    one_group = await client.get(results, params={"segment": "g:0"})
    assert "100%" in one_group.text  # a camp agrees as one

    unknown = await client.get(results, params={"segment": "q:age:ancient"})
    assert unknown.status_code == 422
    assert "q:age:ancient" in unknown.text and "q:age:young" in unknown.text
    bad_trust = await client.get(results, params={"trust": "some"})
    assert bad_trust.status_code == 422 and "trust" in bad_trust.text


async def test_the_live_page_draws_votes_over_time_by_channel_and_source(
    held: None, server: ConsoleServer
) -> None:
    await crowd(server.sessions, server.consultation, server.clock)
    await compute(server.sessions, server.consultation, server.clock)
    client = await _analyst(server)
    page = await client.get(f"{server.console}/c/elders/live")
    assert page.status_code == 200, page.text
    html = unescape(page.text)
    assert html.count('<svg class="chart timeline" role="img"') == 3
    assert "Votes per day, by channel" in html and "Votes per day, by recruitment source" in html
    assert "telegram: 168" in html and "whatsapp: 168" in html  # 12 people x 14 votes each
    assert "poster: 12" in html and "radio: 12" in html
    assert "Engagement by answer to “Your age?”" in html
    assert SECRET_ADDRESS not in html


async def test_the_weighted_switch_and_the_trust_filter(held: None, server: ConsoleServer) -> None:
    # Margins declared: 80% old (a third of the crowd is: each old person weighs more).
    async with server.sessions() as session, session.begin():
        consultation = await session.get(Consultation, server.consultation.id)
        assert consultation is not None
        consultation.settings = consultation.settings | {
            "population": {"age": {"young": 0.2, "old": 0.8}}
        }
        session.add(consultation)
    await crowd(server.sessions, consultation, server.clock)
    await crowd(server.sessions, consultation, server.clock, hasty=6, offset=100)
    await compute(server.sessions, consultation, server.clock)
    client = await _analyst(server)
    results = f"{server.console}/c/elders/results"
    plain = unescape((await client.get(results)).text)
    assert "Weighted to the population's margins (age)" in plain
    assert "design effect" in plain
    assert "Trust: 6 of 30 participants untrusted" in plain

    weighted = await client.get(results, params={"weighted": "true"})
    assert weighted.status_code == 200
    assert 'name="weighted" value="true" checked' in weighted.text
    assert _figures(weighted.text) != _figures(plain)  # the weighted rates, not the raw ones

    trusted = unescape((await client.get(results, params={"trust": "trusted"})).text)
    assert '<option value="trusted" selected>' in trusted
    assert _figures(trusted) != _figures(plain)  # the hasty six left out


def _figures(html: str) -> list[str]:
    return re.findall(r'<p class="dash-figures">([^<]*)</p>', html)
