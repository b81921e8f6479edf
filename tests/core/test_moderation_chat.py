"""Moderation from a moderators' chat, in the core and on both databases: what a connected chat
is shown (once, whoever decides), who may decide from it, and that a decision there is the
console's own (locks, conflicts, refusal reasons); bad taps and codes change nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import col, select

from core.definitions import settings_of
from core.i18n import Translator, has_message
from core.identity import enrol
from core.models import AuditEntry, ChatPost, NoticeState, Proposal, ProposalEvent
from core.moderation import ALREADY_EXISTS, Accept, Actor, Source, decide, next_for
from core.moderation.chat import (
    BUTTON_DATA,
    ChatError,
    Tap,
    chat_code,
    connect_chat,
    disconnect_chat,
    link_member,
    tap_in_chat,
)
from core.moderation.chat_posts import claim_posts, posted, queue_posts
from core.notices import Handover, beat, mark_unknown, record
from core.organisers import Role, add_organiser, revoke
from tests.conftest import SECRET
from tests.support import submitted

GROUP = "-1001234567890"
ADMIN = Actor("cli:admin", Source.CLI)
CONSOLE = Actor("console@example.org", Source.CONSOLE)
STALE = timedelta(seconds=10)
WORKER = "notices-test"


async def _setup(sessions, clock, load_consultation, *, locale: str | None = None):
    consultation = await load_consultation()
    async with sessions() as session, session.begin():
        author = await enrol(session, SECRET, "telegram", "author", "addr-author", clock())
        await connect_chat(session, "telegram", GROUP, "elders", ADMIN, now=clock(), locale=locale)
        for email, role in (("mia@example.org", Role.MODERATOR), ("ana@example.org", Role.ANALYST)):
            await add_organiser(session, email, role, "elders", now=clock())
    return consultation, author.participant.id


async def _propose(sessions, clock, consultation, author: int, typed: str) -> int:
    return await submitted(sessions, clock, consultation, author, typed, "fr")


async def _claim(sessions, clock, channels=("telegram",)):
    async with sessions() as session, session.begin():
        await beat(session, WORKER, clock())
        await queue_posts(session, clock())
        return await claim_posts(session, WORKER, channels, clock())


async def _sent(sessions, clock, post_id: int, message_id: str | None) -> None:
    async with sessions() as session, session.begin():
        await record(session, WORKER, post_id, Handover.SENT, clock(), table=ChatPost)
        await posted(session, post_id, message_id)


async def _link(sessions, clock, member: str, email: str) -> str:
    async with sessions() as session, session.begin():
        code = await chat_code(session, email, now=clock())
    async with sessions() as session, session.begin():
        return await link_member(
            session, "telegram", GROUP, member, code, secret=SECRET, now=clock()
        )


async def _tap(sessions, clock, member: str, data: str, chat: str = GROUP):
    async with sessions() as session, session.begin():
        return await tap_in_chat(
            session, Tap("telegram", chat, member, data), secret=SECRET, now=clock()
        )


async def _proposal(sessions, proposal_id: int) -> Proposal:
    async with sessions() as session:
        found = await session.get(Proposal, proposal_id)
        assert found is not None
        return found


async def test_each_pending_proposal_is_posted_once_and_its_post_says_who_decided(
    load_consultation, sessions, clock
) -> None:
    consultation, author = await _setup(sessions, clock, load_consultation)
    typed = "former davantage d'aides-soignants, vite ! voir https://example.org"
    proposal_id = await _propose(sessions, clock, consultation, author, typed)

    posts = await _claim(sessions, clock)
    assert len(posts) == 1
    post = posts[0]
    assert (post.channel, post.chat_id, post.message_id) == ("telegram", GROUP, None)
    t = Translator("fr")
    assert t("chat.post.heading", id=proposal_id) in post.text
    assert t("moderation.flag.link") in post.text  # its flags
    assert "former davantage d'aides-soignants" in post.text.split(t("chat.post.similar"))[1]
    assert "author" not in post.text and "addr-author" not in post.text  # never its author
    labels = [button.label for row in post.buttons for button in row]
    assert labels == [t("chat.button.accept"), t("chat.button.refuse"), t("chat.button.postpone")]
    assert all(BUTTON_DATA.fullmatch(b.data) for row in post.buttons for b in row)
    assert await _claim(sessions, clock) == []  # claimed: not again
    await _sent(sessions, clock, post.id, "77")
    assert await _claim(sessions, clock) == []  # sent: not again either

    async with sessions() as session, session.begin():  # decided elsewhere (the console)
        await decide(session, proposal_id, Accept(), CONSOLE, clock())
    edits = await _claim(sessions, clock)
    assert len(edits) == 1
    assert edits[0].message_id == "77" and edits[0].buttons == ()
    decided = t("chat.post.decided", status=t("chat.status.accepted"), who=CONSOLE.organiser)
    assert decided in edits[0].text
    await _sent(sessions, clock, edits[0].id, None)
    assert await _claim(sessions, clock) == []
    async with sessions() as session:
        rows = (await session.exec(select(ChatPost.shows, ChatPost.state))).all()
    assert sorted(rows) == [("accepted", "sent"), ("pending", "sent")]


async def test_a_chat_speaks_the_language_it_was_connected_in_and_only_its_channel_claims(
    load_consultation, sessions, clock
) -> None:
    consultation, author = await _setup(sessions, clock, load_consultation, locale="en")
    await _propose(sessions, clock, consultation, author, "ouvrir une ludothèque")
    assert await _claim(sessions, clock, channels=("slack",)) == []
    (post,) = await _claim(sessions, clock)
    assert Translator("en")("chat.button.accept") in [b.label for b in post.buttons[0]]


async def test_a_post_claimed_by_a_worker_that_died_is_never_posted_again(
    load_consultation, sessions, clock
) -> None:
    consultation, author = await _setup(sessions, clock, load_consultation)
    await _propose(sessions, clock, consultation, author, "ouvrir une ludothèque")
    assert len(await _claim(sessions, clock)) == 1
    clock.advance(seconds=60)  # the worker stopped beating
    async with sessions() as session, session.begin():
        await beat(session, "another", clock())
        assert await mark_unknown(session, clock(), STALE, table=ChatPost) == 1
        await queue_posts(session, clock())
        assert await claim_posts(session, "another", ("telegram",), clock()) == []
    async with sessions() as session:
        (row,) = (await session.exec(select(ChatPost))).all()
    assert row.state == NoticeState.UNKNOWN


async def test_a_proposal_decided_before_its_post_went_out_is_not_posted(
    load_consultation, sessions, clock
) -> None:
    consultation, author = await _setup(sessions, clock, load_consultation)
    proposal_id = await _propose(sessions, clock, consultation, author, "ouvrir une ludothèque")
    async with sessions() as session, session.begin():
        await queue_posts(session, clock())
        await decide(session, proposal_id, Accept(), CONSOLE, clock())
    assert await _claim(sessions, clock) == []


async def test_a_linked_moderator_decides_from_the_chat_as_the_console_would(
    load_consultation, sessions, clock
) -> None:
    consultation, author = await _setup(sessions, clock, load_consultation)
    proposal_id = await _propose(sessions, clock, consultation, author, "ouvrir une ludothèque")
    t = Translator("fr")

    answer = await _tap(sessions, clock, "501", f"m:{proposal_id}:a")
    assert answer.text == t("chat.not_linked") and answer.buttons is None
    assert await _link(sessions, clock, "501", "mia@example.org") == t(
        "chat.link.done", organiser="mia@example.org"
    )
    assert await _link(sessions, clock, "502", "ana@example.org") == t(
        "chat.link.done", organiser="ana@example.org"
    )
    answer = await _tap(sessions, clock, "502", f"m:{proposal_id}:a")  # an analyst
    assert answer.text == t("chat.not_moderator")
    assert (await _proposal(sessions, proposal_id)).status == "pending"

    answer = await _tap(sessions, clock, "501", f"m:{proposal_id}:a")
    assert answer.text == t("chat.done.accept") and answer.buttons == ()
    assert (await _proposal(sessions, proposal_id)).status == "accepted"
    async with sessions() as session:
        event = (
            await session.exec(
                select(ProposalEvent).where(ProposalEvent.proposal_id == proposal_id)
            )
        ).one()
        actions = (await session.exec(select(AuditEntry.action, AuditEntry.source))).all()
    assert (event.moderator, event.source, event.action) == ("mia@example.org", "chat", "accept")
    assert ("proposal.accept", "chat") in actions and ("chat.link", "chat") in actions

    answer = await _tap(sessions, clock, "501", f"m:{proposal_id}:p")  # decided already
    assert answer.text == t("chat.already_decided", status=t("chat.status.accepted"))


async def test_refusing_from_the_chat_asks_the_reason_and_a_duplicate_names_the_original(
    load_consultation, sessions, clock
) -> None:
    consultation, author = await _setup(sessions, clock, load_consultation)
    reasons = settings_of(consultation).refusal_reasons
    first = await _propose(sessions, clock, consultation, author, "sortir les poubelles le soir")
    copy = await _propose(
        sessions, clock, consultation, author, "former davantage d'aides-soignants"
    )
    await _link(sessions, clock, "501", "mia@example.org")
    t = Translator("fr")

    picker = await _tap(sessions, clock, "501", f"m:{first}:r")
    assert picker.text == t("chat.pick_reason") and picker.buttons is not None
    assert [row[0].label for row in picker.buttons[:-1]] == [
        t(f"chat.reason.{reason}") for reason in reasons
    ]
    back = await _tap(sessions, clock, "501", f"m:{first}:b")
    assert back.buttons is not None and len(back.buttons[0]) == 3
    off_topic = reasons.index("off-topic")
    answer = await _tap(sessions, clock, "501", f"m:{first}:x:{off_topic}")
    assert answer.text == t("chat.done.refuse")
    refused = await _proposal(sessions, first)
    assert (refused.status, refused.refusal_reason) == ("refused", "off-topic")

    duplicates = await _tap(sessions, clock, "501", f"m:{copy}:x:{reasons.index(ALREADY_EXISTS)}")
    assert duplicates.text == t("chat.pick_duplicate") and duplicates.buttons is not None
    original = duplicates.buttons[0][0]
    assert "former davantage d'aides-soignants" in original.label
    assert (await _proposal(sessions, copy)).status == "pending"  # a choice, not a decision
    await _tap(sessions, clock, "501", original.data)
    async with sessions() as session:
        event = (
            await session.exec(select(ProposalEvent).where(ProposalEvent.proposal_id == copy))
        ).one()
    assert event.reason == ALREADY_EXISTS and f"d:{event.duplicate_of}" in original.data


async def test_a_proposal_a_console_moderator_holds_is_answered_with_their_name(
    load_consultation, sessions, clock
) -> None:
    consultation, author = await _setup(sessions, clock, load_consultation)
    proposal_id = await _propose(sessions, clock, consultation, author, "ouvrir une ludothèque")
    await _link(sessions, clock, "501", "mia@example.org")
    async with sessions() as session, session.begin():
        served = await next_for(session, consultation.id, CONSOLE.organiser, clock())
    assert served is not None and served.id == proposal_id
    answer = await _tap(sessions, clock, "501", f"m:{proposal_id}:a")
    assert CONSOLE.organiser in answer.text and answer.buttons is None
    assert (await _proposal(sessions, proposal_id)).status == "pending"


@pytest.mark.parametrize(
    "data",
    ["", "zz", "m:abc:a", "m:1:z", "m:999999:a", "m:{id}:x:99", "m:{id}:a:1", "m:{seed}:a"],
)
async def test_forged_button_data_is_answered_and_changes_nothing(
    load_consultation, sessions, clock, data: str
) -> None:
    consultation, author = await _setup(sessions, clock, load_consultation)
    proposal_id = await _propose(sessions, clock, consultation, author, "ouvrir une ludothèque")
    await _link(sessions, clock, "501", "mia@example.org")
    other = await load_consultation(slug="other")
    async with sessions() as session:
        seed = (
            await session.exec(select(Proposal.id).where(Proposal.consultation_id == other.id))
        ).first()
    answer = await _tap(sessions, clock, "501", data.format(id=proposal_id, seed=seed))
    assert answer.text == Translator("fr")("chat.unknown_button")
    async with sessions() as session:
        statuses = set((await session.exec(select(Proposal.status))).all())
        events = (await session.exec(select(ProposalEvent))).all()
    assert "refused" not in statuses and events == []


async def test_a_link_code_links_once_within_a_day_and_only_in_a_connected_chat(
    load_consultation, sessions, clock
) -> None:
    await _setup(sessions, clock, load_consultation)
    t = Translator("fr")
    async with sessions() as session, session.begin():
        code = await chat_code(session, "mia@example.org", now=clock())
        stale = await chat_code(session, "mia@example.org", now=clock())
        with pytest.raises(ChatError) as refused:
            await chat_code(session, "nobody@example.org", now=clock())
    assert refused.value.msgid == "chat.error.unknown_organiser"
    async with sessions() as session:
        assert code not in str((await session.exec(select(AuditEntry))).all())

    async def link(member: str, given: str, chat: str = GROUP) -> str:
        async with sessions() as session, session.begin():
            return await link_member(
                session, "telegram", chat, member, given, secret=SECRET, now=clock()
            )

    assert await link("501", code, chat="-42") == Translator("en")("chat.not_connected")
    assert await link("501", "nope") == t("chat.link.unknown")
    assert await link("501", "x" * 24) == t("chat.link.unknown")
    assert await link("501", code) == t("chat.link.done", organiser="mia@example.org")
    assert await link("502", code) == t("chat.link.used")
    clock.advance(hours=24, seconds=1)
    assert await link("502", stale) == t("chat.link.expired")


async def test_a_link_code_made_before_its_organiser_was_revoked_stays_dead_once_they_are_back(
    load_consultation, sessions, clock
) -> None:
    await _setup(sessions, clock, load_consultation)
    async with sessions() as session, session.begin():
        code = await chat_code(session, "mia@example.org", now=clock())
    async with sessions() as session, session.begin():
        await revoke(session, "mia@example.org", now=clock())
    async with sessions() as session, session.begin():
        await add_organiser(session, "mia@example.org", Role.MODERATOR, "elders", now=clock())
    async with sessions() as session, session.begin():
        said = await link_member(
            session, "telegram", GROUP, "saw-the-code", code, secret=SECRET, now=clock()
        )
    assert said == Translator("fr")("chat.link.unknown")
    async with sessions() as session, session.begin():  # a code made once back links
        fresh = await chat_code(session, "mia@example.org", now=clock())
        said = await link_member(
            session, "telegram", GROUP, "501", fresh, secret=SECRET, now=clock()
        )
    assert said == Translator("fr")("chat.link.done", organiser="mia@example.org")


async def test_a_disconnected_chat_is_shown_nothing_and_its_buttons_say_so(
    load_consultation, sessions, clock
) -> None:
    consultation, author = await _setup(sessions, clock, load_consultation)
    proposal_id = await _propose(sessions, clock, consultation, author, "ouvrir une ludothèque")
    await _link(sessions, clock, "501", "mia@example.org")
    assert len(await _claim(sessions, clock)) == 1
    async with sessions() as session, session.begin():
        assert await disconnect_chat(session, "telegram", GROUP, ADMIN, now=clock())
        assert not await disconnect_chat(session, "telegram", GROUP, ADMIN, now=clock())
    answer = await _tap(sessions, clock, "501", f"m:{proposal_id}:a")
    assert answer.text == Translator("en")("chat.not_connected")
    assert await _claim(sessions, clock) == []
    async with sessions() as session, session.begin():
        with pytest.raises(ChatError):
            await connect_chat(session, "telegram", GROUP, "nope", ADMIN, now=clock())
        with pytest.raises(ChatError):
            await connect_chat(
                session, "telegram", GROUP, "elders", ADMIN, now=clock(), locale="xx"
            )


def test_every_status_reason_and_decision_a_chat_shows_is_translated() -> None:
    from core.definitions import ConsultationSettings

    ids = [f"chat.status.{status}" for status in ("pending", "accepted", "refused")]
    ids += [f"chat.status.{status}" for status in ("postponed", "archived", "withdrawn")]
    ids += [f"chat.reason.{reason}" for reason in ConsultationSettings().refusal_reasons]
    ids += [f"chat.done.{action}" for action in ("accept", "refuse", "postpone")]
    missing = [
        (locale, msgid)
        for locale in ("en", "fr")
        for msgid in ids
        if not has_message(locale, msgid)
    ]
    assert missing == []


async def test_posts_and_edits_are_ordered_by_id(load_consultation, sessions, clock) -> None:
    consultation, author = await _setup(sessions, clock, load_consultation)
    ids = [
        await _propose(sessions, clock, consultation, author, f"ouvrir une ludothèque n° {n}")
        for n in range(3)
    ]
    posts = await _claim(sessions, clock)
    assert [post.text.split("\n")[0] for post in posts] == [
        Translator("fr")("chat.post.heading", id=proposal_id) for proposal_id in ids
    ]
    async with sessions() as session:
        found = await session.exec(select(ChatPost.proposal_id).order_by(col(ChatPost.id)))
        assert list(found.all()) == ids


async def test_two_workers_at_once_write_each_post_once_and_never_claim_the_same(
    load_consultation, sessions, clock
) -> None:
    consultation, author = await _setup(sessions, clock, load_consultation)
    ids = [
        await _propose(sessions, clock, consultation, author, f"ouvrir une ludothèque n° {n}")
        for n in range(30)
    ]

    async def drain(worker: str) -> list[int]:
        taken: list[int] = []
        while True:
            async with sessions() as session, session.begin():
                await beat(session, worker, clock())
                await queue_posts(session, clock())
                batch = await claim_posts(session, worker, ("telegram",), clock(), limit=4)
            if not batch:
                return taken
            taken += [post.id for post in batch]

    first, second = await asyncio.gather(drain("w1"), drain("w2"))
    assert not set(first) & set(second)
    async with sessions() as session:
        rows = (await session.exec(select(ChatPost.id, ChatPost.proposal_id))).all()
    assert sorted(first + second) == sorted(post_id for post_id, _ in rows)
    assert sorted(proposal_id for _, proposal_id in rows) == ids  # one post each
