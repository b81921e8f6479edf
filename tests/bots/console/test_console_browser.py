"""The console in a real browser: Debian's headless chromium driven by Playwright (never
Playwright's own browser download), against the app under uvicorn, on both databases.

The story: sign in through the one-time link, moderate a queue with the keyboard, refuse one
proposal as a duplicate of an accepted one, accept one with an edit; the database is checked
after each step. Each page is saved as a screenshot, desktop and phone-sized, in
tests/artifacts/console/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlmodel import col, select

from bots.organisers import sign_in_link
from bots.settings import Settings
from core.models import AuditEntry, Consultation, ProposalEvent
from core.organisers import Role
from tests.bots.console.conftest import ConsoleServer

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}  # a common phone's CSS viewport


def _chromium() -> str:
    """Debian's chromium; skipped (with why) where there is none, but never on CI."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(executable, os.X_OK):
        reason = "no chromium executable (apt-get install chromium) for the browser tests"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run them")
        pytest.skip(reason)
    return executable


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = _chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            await launched.close()


async def _shoot(page: Page, name: str, database: str) -> None:
    """The page as it looks on a desktop and on a phone."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"{name}-{database}-desktop.png", full_page=True)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=ARTIFACTS / f"{name}-{database}-phone.png", full_page=True)
    await page.set_viewport_size(DESKTOP)


async def test_a_moderator_signs_in_and_moderates_a_queue_with_the_keyboard(
    server: ConsoleServer, browser: Browser, database_url: str
) -> None:
    database = "postgres" if database_url.startswith("postgresql") else "sqlite"
    seed = await server.accepted_seed()  # "We should fund weekly home visits", accepted
    first, copy, edited, rude, later = await server.propose(
        "We should plant trees in every schoolyard",
        "We should fund weekly home visits!",
        "We should open librarys on sundays",
        "We should jail every politician",
        "We should light the river banks at night",
    )
    code = await server.code_for("ana@example.org", Role.MODERATOR)

    context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = await context.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"{m.text} {m.location}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append(str(error)))

    # Sign in through the link `consult organiser add` prints: its code is after "#", never
    # sent to the server; the page's script fills it in and takes it out of the address.
    await page.goto(sign_in_link(Settings(public_url=server.url), code))
    await expect(page.get_by_label("Sign-in code")).to_have_value(code)
    assert page.url == f"{server.console}/sign-in"
    await _shoot(page, "1-sign-in", database)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{server.console}/")
    await _shoot(page, "2-consultations", database)
    await page.get_by_role("link", name="How can we better care for our elders?").click()
    await page.wait_for_url(f"{server.console}/c/elders")
    await _shoot(page, "3-overview", database)

    # The queue, oldest first; "a" accepts.
    await page.get_by_role("link", name="Moderate the queue").click()
    await page.wait_for_url(f"{server.console}/c/elders/moderate")
    await expect(page.locator("#proposal-text")).to_contain_text("trees in every schoolyard")
    await _shoot(page, "4-moderate", database)
    async with page.expect_navigation():
        await page.keyboard.press("a")
    assert (await server.proposal(first)).status == "accepted"
    await page.get_by_text(f"Proposal #{first}: accepted.").wait_for()

    # A copy of an accepted proposal: one tap on the similar proposal refuses it as such.
    await expect(page.locator("#proposal-text")).to_contain_text("fund weekly home visits!")
    duplicate_button = page.locator(f"button[data-duplicate='{seed.id}']")
    await duplicate_button.wait_for()
    await _shoot(page, "5-duplicate", database)
    async with page.expect_navigation():
        await duplicate_button.click()
    refused = await server.proposal(copy)
    assert (refused.status, refused.refusal_reason) == ("refused", "already-exists")
    async with server.sessions() as session:
        event = (
            await session.exec(select(ProposalEvent).where(ProposalEvent.proposal_id == copy))
        ).one()
    assert (event.duplicate_of, event.source, event.moderator) == (
        seed.id,
        "console",
        "ana@example.org",
    )

    # "e" opens the edit, Enter accepts the corrected text.
    await expect(page.locator("#proposal-text")).to_contain_text("open librarys on sundays")
    await page.keyboard.press("e")
    editor = page.get_by_label("The proposal as participants will read it")
    assert await editor.evaluate("element => element === document.activeElement")
    await editor.fill("We should open libraries on Sundays")
    await _shoot(page, "6-edit", database)
    async with page.expect_navigation():
        await editor.press("Enter")
    accepted = await server.proposal(edited)
    assert (accepted.status, accepted.text) == ("accepted", "We should open libraries on Sundays")
    async with server.sessions() as session:
        history = (
            await session.exec(select(ProposalEvent).where(ProposalEvent.proposal_id == edited))
        ).one()
    assert history.original_text == "We should open librarys on sundays"

    # "r" opens the reasons, a reason's number refuses with it.
    await expect(page.locator("#proposal-text")).to_contain_text("jail every politician")
    await page.keyboard.press("r")
    await _shoot(page, "7-refuse", database)
    async with page.expect_navigation():
        await page.keyboard.press("3")  # the third reason: partisan
    assert (await server.proposal(rude)).refusal_reason == "partisan"

    # "p" postpones; then the queue is empty and says so.
    await expect(page.locator("#proposal-text")).to_contain_text("light the river banks")
    async with page.expect_navigation():
        await page.keyboard.press("p")
    assert (await server.proposal(later)).status == "postponed"
    await page.get_by_text("Nothing waits for moderation").wait_for()
    await _shoot(page, "8-empty-queue", database)
    async with page.expect_navigation():
        await page.keyboard.press("n")  # look again
    await page.get_by_text("Nothing waits for moderation").wait_for()

    # Bulk mode and the audit log, as they look after this session.
    await page.goto(f"{server.console}/c/elders/bulk?status=")
    await _shoot(page, "9-bulk", database)
    await page.goto(f"{server.console}/c/elders/audit")
    await page.get_by_text("proposal.refuse").first.wait_for()
    await _shoot(page, "10-audit", database)
    async with server.sessions() as session:
        actions = list(
            await session.exec(
                select(AuditEntry.action)
                .where(AuditEntry.source == "console", AuditEntry.consultation_id.is_not(None))  # type: ignore[union-attr]
                .order_by(col(AuditEntry.id))
            )
        )
    assert actions == [
        "proposal.accept",
        "proposal.refuse",
        "proposal.accept",
        "proposal.refuse",
        "proposal.postpone",
    ]
    assert problems == []  # no script error, nothing the content security policy blocked
    await context.close()


async def test_the_page_keeps_its_lock_and_a_forged_form_is_refused_in_french(
    server: ConsoleServer, browser: Browser
) -> None:
    async with server.sessions() as session, session.begin():
        consultation = await session.get(Consultation, server.consultation.id)
        assert consultation is not None
        consultation.settings = {**consultation.settings, "moderation_lock_seconds": 6}
        session.add(consultation)  # the page renews the lock every 2 seconds
    (proposal_id,) = await server.propose("We should open libraries on Sundays")
    code = await server.code_for("ana@example.org", Role.MODERATOR)
    context = await browser.new_context(viewport=PHONE, locale="fr-FR")
    page = await context.new_page()
    await page.goto(sign_in_link(Settings(public_url=server.url), code))
    await page.get_by_role("button", name="Me connecter").click()
    await page.wait_for_url(f"{server.console}/")
    await page.goto(f"{server.console}/c/elders/moderate")
    await page.get_by_role("button", name="Accepter").first.wait_for()

    # While the page is open, htmx renews the lock: it runs on from the renewal's moment.
    held = (await server.proposal(proposal_id)).locked_until
    assert held is not None
    server.clock.advance(seconds=4)
    renewed = None
    for _ in range(3):  # a renewal answered before the clock moved may still be on its way
        async with page.expect_response(lambda r: r.url.endswith("/renew")) as renewal:
            pass
        assert (await renewal.value).status == 200
        renewed = (await server.proposal(proposal_id)).locked_until
        if renewed != held:
            break
    assert renewed == held + timedelta(seconds=4)
    await expect(page.locator("#lock")).to_contain_text("Réservée pour vous")

    # A form whose token was tampered with is refused, and says so in French.
    await page.locator("form[action$='/accept'] input[name=csrf]").first.evaluate(
        "field => { field.value = 'forged' }"
    )
    response: Any
    async with page.expect_navigation() as navigation:
        await page.get_by_role("button", name="Accepter").first.click()
    response = await navigation.value
    assert response is not None and response.status == 403
    await page.get_by_text("rien n'a été modifié").wait_for()
    await page.screenshot(path=ARTIFACTS / "11-forged-form-fr-phone.png", full_page=True)
    await context.close()


async def test_without_script_the_code_of_the_link_is_pasted(
    browser: Browser, server: ConsoleServer
) -> None:
    code = await server.code_for("ana@example.org", Role.MODERATOR)
    context = await browser.new_context(viewport=PHONE, locale="en-GB", java_script_enabled=False)
    page = await context.new_page()
    await page.goto(sign_in_link(Settings(public_url=server.url), code))
    field = page.get_by_label("Sign-in code")
    await expect(field).to_have_value("")  # nothing fills it in
    await field.fill(code)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{server.console}/")
    await expect(page.get_by_text("How can we better care for our elders?")).to_be_visible()
    await context.close()
