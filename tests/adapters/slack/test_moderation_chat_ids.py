"""A Slack moderators' channel whose buttons name ids beyond what the database holds (a forged
action's value): answered to the member alone, 200, nothing changed; a member not linked is
told so before their value is read."""

from __future__ import annotations

import pytest

from tests.adapters.slack import test_moderation_chat as slack_chat
from tests.adapters.slack.test_moderation_chat import FR, ChatRig

chat = slack_chat.chat  # the channel served alone, on both databases


@pytest.mark.parametrize("value", ["m:99999999999:a", "m:{id}:d:99999999999", f"m:{2**31}:p"])
async def test_a_tap_beyond_the_database_s_ids_is_an_unknown_button(
    chat: ChatRig, value: str
) -> None:
    proposal_id = await chat.propose("ouvrir une ludothèque le dimanche")
    assert await chat.deliver_posts() == 1
    assert (await chat.link("U0MIA", "mia@example.org")).status_code == 200
    forged = value.format(id=proposal_id)
    assert await chat.tap("U0STRANGER", forged) == FR("chat.not_linked")
    assert await chat.tap("U0MIA", forged) == FR("chat.unknown_button")
    assert await chat.status(proposal_id) == "pending"
