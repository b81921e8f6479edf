"""Taps in the moderators' group naming ids beyond what the database holds (the button pattern
takes them, PostgreSQL's integer does not): answered 200 with a callback answer, never a 500
that Telegram would deliver again and again. Only a database that may answer later is a 500."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlmodel import select

from adapters.telegram.moderation import transient
from core.models import ProposalEvent
from tests.adapters.telegram import test_moderation_chat as group_chat
from tests.adapters.telegram.test_moderation_chat import FR, GROUP, MIA, STRANGER, Rig
from tests.fuzzing import FUZZ

rig = group_chat.rig  # the moderators' group behind the real webhook, on both databases
VERBS = st.sampled_from(["a", "p", "r", "b", "x:0", "x:999", "d:1", "d:99999999999"])


async def _tap(rig: Rig, member: int, data: str) -> str:
    rig.fake.messages.setdefault(GROUP, {})[1] = {
        "message_id": 1,
        "chat": rig.fake.chat(GROUP),
        "date": 0,
        "text": "post",
    }
    response = await rig.post(rig.fake.callback_update(member, 1, data, chat_id=GROUP))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["method"] == "answerCallbackQuery"
    return str(answer["text"])


@pytest.mark.parametrize("data", ["m:99999999999:a", "m:1:d:99999999999", f"m:{2**31}:p"])
async def test_a_tap_beyond_the_database_s_ids_is_an_unknown_button(rig: Rig, data: str) -> None:
    await rig.link(MIA, "mia@example.org")
    assert await _tap(rig, MIA, data) == FR("chat.unknown_button")
    assert await _tap(rig, STRANGER, data) == FR("chat.not_linked")


@FUZZ
@given(proposal=st.integers(0, 10**19), verb=VERBS)
@example(proposal=2**31 - 1, verb="a")
@example(proposal=2**31, verb="d:1")
async def test_any_id_in_a_button_is_answered_and_changes_nothing(
    rig: Rig, proposal: int, verb: str
) -> None:
    await rig.link(MIA, "mia@example.org")
    assert await _tap(rig, MIA, f"m:{proposal}:{verb}")  # no such proposal: answered
    async with rig.sessions() as session:
        assert (await session.exec(select(ProposalEvent))).all() == []


def test_only_a_database_that_may_answer_later_is_transient() -> None:
    cause = Exception("cause")
    assert transient(OperationalError("BEGIN", None, cause))  # locked, unreachable
    assert transient(DBAPIError("SELECT 1", None, cause, connection_invalidated=True))
    assert not transient(DataError("SELECT", None, cause))  # out of range: the same again
    assert not transient(IntegrityError("INSERT", None, cause))
    assert not transient(DBAPIError("SELECT", None, cause))
