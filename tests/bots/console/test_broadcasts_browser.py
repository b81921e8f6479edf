"""The compose page in a real browser (Debian's headless chromium through Playwright), on both
databases: an administrator types an audience expression and watches its live count change by
channel and locale, sees a parse error under the field with its position, fixes it, previews
the texts, schedules the broadcast and lands on its page; then, once its occurrence is
planned, the page's progress and stats follow the outbox without a reload, and pause and
resume work. Each page is saved, desktop and phone-sized, in tests/artifacts/console/.
"""

from __future__ import annotations

from datetime import timedelta

from playwright.async_api import Browser, expect
from sqlmodel import col, select, update

from bots.organisers import sign_in_link
from bots.scheduler import next_fire
from bots.settings import Settings
from core.broadcasts.planning import plan_due
from core.models import AuditEntry, Broadcast, BroadcastMessage
from core.organisers import Role
from tests.bots.console.conftest import ConsoleServer
from tests.bots.console.test_console_browser import ARTIFACTS, DESKTOP, PHONE, _shoot, browser
from tests.bots.test_api_broadcasts import hold_the_scheduler, people

__all__ = ["browser"]  # the fixture, shared with the moderation story


async def test_an_admin_composes_a_broadcast_with_a_live_audience_count(
    server: ConsoleServer, browser: Browser, database_url: str
) -> None:
    database = "postgres" if database_url.startswith("postgresql") else "sqlite"
    await hold_the_scheduler(server.sessions)
    await people(
        server.sessions,
        server.clock,
        server.consultation,
        ("telegram", "fr", "old"),
        ("telegram", "fr", "young"),
        ("whatsapp", "fr", "old"),
        ("telegram", "en", "young"),
        ("whatsapp", "en", "young"),
    )
    code = await server.code_for("root@example.org", Role.ADMIN, "elders")
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    await page.goto(sign_in_link(Settings(public_url=server.url), code))
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{server.console}/")

    await page.goto(f"{server.console}/c/elders")
    await page.get_by_role("link", name="Broadcasts").click()
    await page.wait_for_url(f"{server.console}/c/elders/broadcasts")
    await page.get_by_text("No broadcast yet.").wait_for()
    await page.get_by_role("link", name="Compose a broadcast").click()
    await page.wait_for_url(f"{server.console}/c/elders/broadcasts/new")

    # The count as the page opens ("all"), then as the organiser types.
    count = page.locator("#audience-count")
    await expect(count).to_contain_text("5 recipients")
    audience = page.get_by_label("Who receives it (an audience expression)")
    await audience.fill("locale:en")
    await expect(count).to_contain_text("2 recipients")
    await expect(count.locator("#audience-by-channel")).to_have_text(
        "By channel: telegram 1 · whatsapp 1"
    )
    await audience.fill("locale:en and (profile.age:young")
    fault = page.locator("#audience-fault")
    await expect(fault).to_contain_text("Column 15: this '(' is never closed")
    await expect(fault.locator("pre")).to_contain_text(" " * 14 + "^")  # under the "("
    await _shoot(page, "20-broadcast-audience-fault", database)
    await audience.fill("profile.age:young and channel:telegram")
    await expect(count).to_contain_text("2 recipients")
    await expect(page.locator("#audience-fault")).to_have_count(0)

    await page.get_by_label("Text in FR").fill("Votez avant dimanche !")
    await page.get_by_label("Text in EN").fill("Vote before Sunday!")
    await page.get_by_label("Add a button").check()
    preview = page.locator("#preview")
    await expect(preview).to_contain_text("Vote before Sunday!")
    await expect(preview.locator(".button").first).to_have_text("Continuer")  # in French
    await page.get_by_label("At a date and time").check()
    tomorrow = server.clock() + timedelta(days=1)
    await page.get_by_label("Date and time of the first sending").fill(
        tomorrow.strftime("%Y-%m-%dT10:00")
    )
    await _shoot(page, "21-broadcast-compose", database)

    # A date in the past is said under its field, the rest kept as typed.
    await page.get_by_label("Date and time of the first sending").fill("2026-01-01T10:00")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Schedule the broadcast").click()
    await expect(page.locator("#at-fault")).to_be_visible()
    await expect(page.get_by_label("Text in EN")).to_have_value("Vote before Sunday!")
    await _shoot(page, "22-broadcast-past-date", database)
    assert [p for p in problems if "422" not in p] == []  # the refused form's own status
    problems.clear()
    async with server.sessions() as session:
        assert list(await session.exec(select(Broadcast))) == []

    # Now: scheduled, and the organiser lands on its page.
    await page.get_by_label("Now").check()
    async with page.expect_navigation():
        await page.get_by_role("button", name="Schedule the broadcast").click()
    async with server.sessions() as session:
        (broadcast,) = list(await session.exec(select(Broadcast)))
    assert page.url == f"{server.console}/c/elders/broadcasts/{broadcast.id}"
    assert broadcast.texts == {"fr": "Votez avant dimanche !", "en": "Vote before Sunday!"}
    assert (broadcast.audience, broadcast.button) == (
        "profile.age:young and channel:telegram",
        True,
    )
    await expect(page.locator("h1")).to_have_text(f"Broadcast #{broadcast.id}")
    await expect(page.locator("#state")).to_have_text("scheduled")

    # Its occurrence is planned, as the scheduler does: the page follows the outbox.
    async with server.sessions() as session, session.begin():
        planned = await plan_due(session, server.clock(), next_fire)
    assert [run.queued for run in planned] == [2]
    await page.reload()
    await expect(page.get_by_text("0 of 2 messages dealt with")).to_be_visible()
    await expect(page.locator("#state")).to_have_text("sending")

    # Pause and resume, each saying what happened.
    async with page.expect_navigation():
        await page.get_by_role("button", name="Pause").click()
    await expect(page.locator("#done")).to_contain_text("Paused")
    await expect(page.locator("#state")).to_have_text("paused")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Resume").click()
    await expect(page.locator("#done")).to_contain_text("Resumed")

    # The messages go out: the figures follow without a reload (htmx asks every 2 s).
    async with server.sessions() as session, session.begin():
        await session.exec(
            update(BroadcastMessage)
            .where(col(BroadcastMessage.broadcast_id) == broadcast.id)
            .values(state="sent", sent_at=server.clock())
        )
    await expect(page.locator("[data-stat=sent]")).to_have_text("2")
    await expect(page.get_by_text("2 of 2 messages dealt with")).to_be_visible()
    await expect(page.locator("#state")).to_have_text("done")
    await expect(page.get_by_role("button", name="Pause")).to_have_count(0)  # nothing to hold
    await _shoot(page, "23-broadcast-page", database)
    assert "+336" not in await page.content()

    await page.goto(f"{server.console}/c/elders/broadcasts")
    await expect(page.locator("table")).to_contain_text("done")
    await _shoot(page, "24-broadcast-list", database)
    async with server.sessions() as session:
        actions = list(
            await session.exec(
                select(AuditEntry.action)
                .where(col(AuditEntry.action).startswith("broadcast-"))
                .order_by(col(AuditEntry.id))
            )
        )
    # In French, on a phone.
    await page.get_by_role("link", name="FR").click()
    await page.get_by_role("link", name="Rédiger une diffusion").click()
    await expect(page.locator("#audience-count")).to_contain_text("5 destinataires")
    await page.set_viewport_size(PHONE)
    await page.screenshot(
        path=ARTIFACTS / f"25-broadcast-compose-fr-{database}-phone.png", full_page=True
    )
    assert actions == [
        "broadcast-create",
        "broadcast-pause",
        "broadcast-resume",
    ]
    assert problems == []  # no script error, nothing the content security policy blocked
    await context.close()
