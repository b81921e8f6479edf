"""Slack offers every command the core runs as `/consult <word>`."""

from __future__ import annotations

import pytest

from adapters.slack.inbound import slash_command_event
from core.conversation.commands import COMMANDS
from core.messages import Command, Start

BODY = {"team_id": "T1", "user_id": "U1", "trigger_id": "1.2.3"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_core_command_is_a_consult_word(name: str) -> None:
    event = slash_command_event({**BODY, "text": f"{name} elders"}, "D1", "en")
    assert isinstance(event, Command)
    assert (event.name, event.argument) == (name, "elders")


def test_any_other_word_is_a_consultation() -> None:
    event = slash_command_event({**BODY, "text": "elders"}, "D1", "en")
    assert isinstance(event, Start) and event.payload == "elders"
