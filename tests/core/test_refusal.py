"""The Outcome says when the conversation refused what the participant submitted, and why."""

from __future__ import annotations

from core.flow import Outcome
from core.i18n import Translator
from core.messages import FormSubmit, Text
from tests.conftest import consultation_data
from tests.support import Chat

MINIMUM = 30  # characters, the prefix "We should" included


async def _load(load_consultation) -> None:
    settings = {**consultation_data()["settings"], "proposal_min_length": MINIMUM}
    await load_consultation(settings=settings)


async def _ready_to_propose(chat_factory) -> Chat:
    """A participant who voted a sequence and stands at the menu, in English."""
    bob: Chat = chat_factory("bob", "en")
    await bob.start("elders")
    await bob.tap("accept")
    await bob.tap("skip")
    await bob.vote_sequence()
    return bob


async def test_a_too_short_proposal_is_a_refusal_naming_the_minimum(
    load_consultation, chat, flow
) -> None:
    await _load(load_consultation)
    bob = await _ready_to_propose(chat)
    await bob.tap("propose")

    outcome: Outcome = await flow.handle(
        Text(channel="test", user_id="bob", key="short", locale_hint="en", text="plant trees")
    )

    expected = Translator("en")("propose.error.too_short", minimum=MINIMUM)
    assert outcome.refusal == expected
    assert outcome.replies[-1].text == expected  # said in the chat too


async def test_a_submitted_form_too_short_is_refused_and_an_accepted_one_is_not(
    load_consultation, chat, flow
) -> None:
    await _load(load_consultation)
    await _ready_to_propose(chat)
    sender = {"channel": "test", "user_id": "bob", "locale_hint": "en"}

    refused = await flow.handle(
        FormSubmit(form="proposal", fields={"text": "plant trees"}, key="f1", **sender)
    )
    accepted = await flow.handle(
        FormSubmit(form="proposal", fields={"text": "open libraries at night"}, key="f2", **sender)
    )

    assert refused.refusal is not None and "too short" in refused.refusal
    assert accepted.refusal is None
    assert accepted.replies[-1].pick is not None  # asked to confirm the proposal
    assert [o.id for o in accepted.replies[-1].pick.options] == ["confirm", "edit", "cancel"]
