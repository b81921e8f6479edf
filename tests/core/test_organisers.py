"""Organiser accounts in the core: grants and what they allow, one-time sign-in codes, API
tokens, revocation and the sign-in rate limit, on both databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import select

from core.models import Organiser, OrganiserSecret, SignInAttempt
from core.organisers import (
    EXPIRED_CODE,
    TOKEN_PREFIX,
    UNKNOWN_CODE,
    USED_CODE,
    BadEmail,
    Grant,
    OrganiserView,
    Permission,
    Role,
    SignInRefused,
    UnknownConsultation,
    UnknownOrganiser,
    add_organiser,
    issue_token,
    organiser_by_id,
    organiser_for_token,
    organisers,
    redeem_sign_in_code,
    revoke,
    sign_in_allowed,
    sign_in_code,
)


async def _add(sessions, clock, email, role, slug=None) -> tuple[OrganiserView, str]:
    async with sessions() as session, session.begin():
        return await add_organiser(session, email, role, slug, now=clock())


async def _redeem(sessions, clock, code) -> OrganiserView | SignInRefused:
    async with sessions() as session, session.begin():
        try:
            return await redeem_sign_in_code(session, code, now=clock())
        except SignInRefused as refused:
            return refused


def test_each_role_allows_what_it_says_where_it_is_granted() -> None:
    analyst = OrganiserView(1, "a@example.org", (Grant(Role.ANALYST, 7),), 0)
    moderator = OrganiserView(2, "m@example.org", (Grant(Role.MODERATOR, 7),), 0)
    admin = OrganiserView(3, "root@example.org", (Grant(Role.ADMIN, None),), 0)
    mixed = OrganiserView(4, "x@example.org", (Grant(Role.ANALYST, 7), Grant(Role.MODERATOR, 8)), 0)
    assert analyst.can(Permission.READ, 7) and not analyst.can(Permission.MODERATE, 7)
    assert not analyst.can(Permission.READ, 8)
    assert moderator.can(Permission.MODERATE, 7) and not moderator.can(Permission.MODERATE, 8)
    assert not moderator.can(Permission.ADMINISTER, 7)
    assert all(admin.can(p, c) for p in Permission for c in (7, 8, 9))
    assert mixed.can(Permission.MODERATE, 8) and not mixed.can(Permission.MODERATE, 7)
    assert analyst.readable() == {7} and mixed.readable() == {7, 8}
    assert admin.readable() is None
    assert OrganiserView(5, "n@example.org", (), 0).readable() == frozenset()


async def test_adding_an_organiser_grants_a_role_and_gives_a_code_that_signs_in_once(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    view, code = await _add(sessions, clock, " Ana@Example.org ", Role.MODERATOR, "elders")
    assert view.email == "ana@example.org"
    assert view.grants == (Grant(Role.MODERATOR, consultation.id),)
    signed_in = await _redeem(sessions, clock, code)
    assert signed_in == view
    refused = await _redeem(sessions, clock, code)
    assert isinstance(refused, SignInRefused) and refused.msgid == USED_CODE
    async with sessions() as session:
        stored = (await session.exec(select(OrganiserSecret))).all()
    assert [row.kind for row in stored] == ["sign-in"]
    assert code.partition(".")[2] not in {stored[0].secret_hash, stored[0].selector}


async def test_adding_again_adds_a_grant_or_changes_the_role_on_the_same_consultation(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    await _add(sessions, clock, "ana@example.org", Role.ANALYST, "elders")
    view, _ = await _add(sessions, clock, "ana@example.org", Role.ADMIN)
    assert view.grants == (Grant(Role.ANALYST, consultation.id), Grant(Role.ADMIN, None))
    view, _ = await _add(sessions, clock, "ANA@example.org", Role.MODERATOR, "elders")
    assert view.grants == (Grant(Role.MODERATOR, consultation.id), Grant(Role.ADMIN, None))
    await _add(sessions, clock, "ben@example.org", Role.ANALYST)
    async with sessions() as session:
        assert [o.email for o in await organisers(session)] == [
            "ana@example.org",
            "ben@example.org",
        ]


@pytest.mark.parametrize(
    ("email", "slug", "error"),
    [
        ("not-an-address", None, BadEmail),
        ("ana@localhost", None, BadEmail),
        ("ana @example.org", None, BadEmail),
        ("a" * 250 + "@example.org", None, BadEmail),
        ("ana@example.org", "nowhere", UnknownConsultation),
    ],
)
async def test_a_bad_address_or_an_unknown_consultation_adds_nobody(
    load_consultation, sessions, clock, email, slug, error
) -> None:
    await load_consultation()
    with pytest.raises(error):
        await _add(sessions, clock, email, Role.ADMIN, slug)
    async with sessions() as session:
        assert (await session.exec(select(Organiser))).all() == []


async def test_a_sign_in_code_lasts_a_day_and_a_forged_one_says_unknown(sessions, clock) -> None:
    _, first = await _add(sessions, clock, "ana@example.org", Role.ADMIN)
    async with sessions() as session, session.begin():
        second = await sign_in_code(session, "ana@example.org", now=clock())
    clock.advance(hours=23, minutes=59)
    assert isinstance(await _redeem(sessions, clock, second), OrganiserView)
    clock.advance(minutes=1)
    expired = await _redeem(sessions, clock, first)
    assert isinstance(expired, SignInRefused) and expired.msgid == EXPIRED_CODE
    selector, _, verifier = first.partition(".")
    for forged in ("", ".", "nothing", f"{selector}.{verifier[:-1]}x", f"{selector}x.{verifier}"):
        refused = await _redeem(sessions, clock, forged)
        assert isinstance(refused, SignInRefused) and refused.msgid == UNKNOWN_CODE, forged
    async with sessions() as session, session.begin():
        with pytest.raises(UnknownOrganiser):
            await sign_in_code(session, "ben@example.org", now=clock())


async def test_a_code_redeemed_twice_at_once_signs_in_once(sessions, clock) -> None:
    _, code = await _add(sessions, clock, "ana@example.org", Role.ADMIN)
    barrier = asyncio.Barrier(2)

    async def redeem() -> OrganiserView | SignInRefused:
        async with sessions() as session, session.begin():
            await barrier.wait()  # both transactions open, neither has read the code
            try:
                return await redeem_sign_in_code(session, code, now=clock())
            except SignInRefused as refused:
                return refused

    outcomes = await asyncio.gather(redeem(), redeem())
    assert sorted(type(o).__name__ for o in outcomes) == ["OrganiserView", "SignInRefused"]
    assert [o.msgid for o in outcomes if isinstance(o, SignInRefused)] == [USED_CODE]


async def test_a_token_finds_its_organiser_until_revoked(sessions, clock) -> None:
    view, code = await _add(sessions, clock, "ana@example.org", Role.MODERATOR)
    async with sessions() as session, session.begin():
        token = await issue_token(session, "ana@example.org", now=clock())
        other = await issue_token(session, "ana@example.org", now=clock())
    assert token.startswith(TOKEN_PREFIX) and token != other
    async with sessions() as session:
        assert await organiser_for_token(session, token, now=clock()) == view
        assert await organiser_for_token(session, other, now=clock()) == view
        for forged in ("", TOKEN_PREFIX, token[:-1], token.removeprefix(TOKEN_PREFIX), code):
            assert await organiser_for_token(session, forged, now=clock()) is None, forged
        stored = [row.secret_hash for row in (await session.exec(select(OrganiserSecret)))]
    assert not any(token.endswith(digest) or digest in token for digest in stored)

    async with sessions() as session, session.begin():
        assert await revoke(session, "ana@example.org", now=clock()) == 2
    async with sessions() as session:
        assert await organiser_for_token(session, token, now=clock()) is None
        assert await organiser_by_id(session, view.id) is None
        assert await organisers(session) == []
    refused = await _redeem(sessions, clock, code)  # an unused code dies with the account
    assert isinstance(refused, SignInRefused)
    async with sessions() as session, session.begin():
        with pytest.raises(UnknownOrganiser):
            await issue_token(session, "ana@example.org", now=clock())
        with pytest.raises(UnknownOrganiser):
            await revoke(session, "ana@example.org", now=clock())

    back, _ = await _add(sessions, clock, "ana@example.org", Role.ANALYST)
    assert back.session_version == view.session_version + 1  # old console sessions stay out
    async with sessions() as session:
        assert await organiser_for_token(session, token, now=clock()) is None  # still revoked
        assert await organiser_by_id(session, view.id) == back
    refused = await _redeem(sessions, clock, code)  # so is the code made before the revocation
    assert isinstance(refused, SignInRefused) and refused.msgid == UNKNOWN_CODE


async def test_sign_in_attempts_are_limited_per_key_and_window(sessions, clock) -> None:
    async def allowed(key: str) -> bool:
        async with sessions() as session, session.begin():
            return await sign_in_allowed(
                session, key, now=clock(), attempts=3, window=timedelta(minutes=15)
            )

    clock.now = clock.now.replace(minute=0, second=0)
    assert [await allowed("203.0.113.9") for _ in range(4)] == [True, True, True, False]
    assert await allowed("198.51.100.7")  # another key has its own count
    clock.advance(minutes=14, seconds=59)
    assert not await allowed("203.0.113.9")
    clock.advance(seconds=1)  # a new window
    assert await allowed("203.0.113.9")
    async with sessions() as session:
        rows = (await session.exec(select(SignInAttempt))).all()
    assert [row.count for row in rows] == [1]  # the past windows are gone
    assert "203.0.113.9" not in rows[0].key_hash


async def test_sign_in_attempts_at_once_are_all_counted(sessions, clock) -> None:
    barrier = asyncio.Barrier(4)

    async def attempt() -> bool:
        async with sessions() as session, session.begin():
            await barrier.wait()
            return await sign_in_allowed(session, "ana@example.org", now=clock(), attempts=2)

    assert sorted(await asyncio.gather(*(attempt() for _ in range(4)))) == [
        False,
        False,
        True,
        True,
    ]
