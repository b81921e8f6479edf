"""The dashboard in a real browser (Debian's headless chromium, Playwright), on both databases:
the demo consultation and a Polis conversation imported with `consult import polis`, their
results computed as the scheduler computes them. An analyst reads the Live and Results pages,
filters by an opinion group, switches to French; no script error, no chart wider than a
phone. Each page is saved as a screenshot, desktop and phone-sized, in tests/artifacts/console/
(git-ignored)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.processes import serving
from bots.demo import seed_demo
from bots.organisers import sign_in_link
from bots.polis_import import import_polis
from bots.server import create_app
from bots.settings import Settings
from core.definitions import consultation_by_slug
from core.organisers import Role, add_organiser
from core.polis import read_polis
from core.results.recompute import recompute_results
from tests.bots.console.dashboard_population import hold_the_scheduler
from tests.bots.console.test_console_browser import ARTIFACTS, DESKTOP, PHONE, browser
from tests.polis_data import polis_dir
from tests.support import Clock

__all__ = ["browser"]  # the fixture, shared with the console's browser test
SECRET = b"dashboard-browser-secret-32bytes"


@dataclass
class Served:
    url: str
    code: str
    demo: str


@pytest.fixture
async def served(
    database_url: str,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> AsyncIterator[Served]:
    await hold_the_scheduler(sessions)
    demo = await seed_demo(sessions, SECRET, clock())
    seattle = read_polis(polis_dir("15-per-hour-seattle"))
    await import_polis(sessions, SECRET, seattle, "seattle", "en", clock(), None)
    async with sessions() as session, session.begin():
        for slug in (demo.slug, "seattle"):
            consultation = await consultation_by_slug(session, slug)
            assert consultation is not None
            await recompute_results(session, consultation, clock())
        _, code = await add_organiser(session, "ana@example.org", Role.ANALYST, None, now=clock())
    settings = Settings(data_dir=tmp_path, database_url=database_url, secret_key="dash-secret")
    async with serving(create_app(settings, channels=[], clock=clock)) as url:
        yield Served(url, code, demo.slug)


async def _shoot(page: Page, name: str, database: str) -> None:
    """The page on a desktop and on a phone; on the phone, nothing wider than the screen."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"{name}-{database}-desktop.png", full_page=True)
    await page.set_viewport_size(PHONE)
    overflow = await page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= PHONE["width"], f"{name}: {overflow}px wide on a phone"
    await page.screenshot(path=ARTIFACTS / f"{name}-{database}-phone.png", full_page=True)
    await page.screenshot(path=ARTIFACTS / f"{name}-{database}-phone-screen.png")
    if await page.locator("#groups").count():
        await page.locator("#groups").screenshot(path=ARTIFACTS / f"{name}-{database}-groups.png")
    await page.set_viewport_size(DESKTOP)


async def test_an_analyst_reads_the_dashboard_of_the_demo_and_of_a_polis_conversation(
    served: Served, browser: Browser, database_url: str
) -> None:
    database = "postgres" if database_url.startswith("postgresql") else "sqlite"
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    await page.goto(sign_in_link(Settings(public_url=served.url), served.code))
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{served.url}/console/")
    console = f"{served.url}/console"

    await page.goto(f"{console}/c/{served.demo}/live")
    await expect(page.get_by_role("heading", name="Votes per day, by channel")).to_be_visible()
    await _shoot(page, "21-dashboard-live-demo", database)
    await page.get_by_role("link", name="Results", exact=True).click()
    await expect(page.get_by_role("heading", name="Opinion groups")).to_be_visible()
    await expect(page.get_by_role("img", name="Opinion map")).to_be_visible()
    await _shoot(page, "22-dashboard-results-demo", database)

    await page.goto(f"{console}/c/seattle/results")
    await expect(page.get_by_role("img", name="Opinion map")).to_be_visible()
    await expect(page.locator("#attribution")).to_contain_text("CC BY 4.0")
    await _shoot(page, "23-dashboard-results-polis", database)
    await page.get_by_role("combobox", name="Who voted").select_option("g:0")
    await page.get_by_role("button", name="Show").click()
    await expect(page.get_by_role("combobox", name="Who voted")).to_have_value("g:0")
    await _shoot(page, "24-dashboard-results-polis-group-a", database)

    await page.goto(f"{console}/language?to=fr&back=/console/c/seattle/results")
    await expect(page.get_by_role("heading", name="Groupes d'opinion")).to_be_visible()
    await _shoot(page, "25-dashboard-results-polis-fr", database)
    await page.goto(f"{console}/c/seattle/live")
    await expect(page.get_by_role("heading", name="Votes par jour, selon le canal")).to_be_visible()
    await _shoot(page, "26-dashboard-live-polis-fr", database)
    assert problems == []
    await context.close()
