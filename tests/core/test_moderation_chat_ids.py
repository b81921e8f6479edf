"""Button data naming ids beyond what the database holds, on both databases: answered as an
unknown button (or "not linked" before anything else), never an error, nothing changed."""

from __future__ import annotations

import pytest
from sqlmodel import select

from core.i18n import Translator
from core.models import Proposal, ProposalEvent
from tests.core.test_moderation_chat import _link, _propose, _setup, _tap

BIG = "99999999999"  # fits the old 18-digit pattern, not PostgreSQL's integer


async def _unchanged(sessions) -> None:
    async with sessions() as session:
        statuses = set((await session.exec(select(Proposal.status))).all())
        events = (await session.exec(select(ProposalEvent))).all()
    assert statuses <= {"pending", "accepted"} and events == []


@pytest.mark.parametrize("data", [f"m:{BIG}:a", f"m:{2**31}:p", "m:{id}:d:" + BIG, "m:0:a"])
async def test_a_tap_naming_an_id_beyond_the_database_is_an_unknown_button(
    load_consultation, sessions, clock, data: str
) -> None:
    consultation, author = await _setup(sessions, clock, load_consultation)
    proposal_id = await _propose(sessions, clock, consultation, author, "ouvrir une ludothèque")
    await _link(sessions, clock, "501", "mia@example.org")
    answer = await _tap(sessions, clock, "501", data.format(id=proposal_id))
    assert answer.text == Translator("fr")("chat.unknown_button")
    await _unchanged(sessions)


async def test_a_member_not_linked_is_told_so_before_their_data_is_read(
    load_consultation, sessions, clock
) -> None:
    await _setup(sessions, clock, load_consultation)
    for data in (f"m:{BIG}:a", "forged", "m:1:a"):
        answer = await _tap(sessions, clock, "stranger", data)
        assert answer.text == Translator("fr")("chat.not_linked")
    await _unchanged(sessions)
