"""The command names the core exports for channels are the ones its conversation runs."""

from __future__ import annotations

import pytest

from core.conversation.commands import COMMANDS
from core.i18n import Translator
from tests.support import Chat


def _unknown(name: str) -> str:
    return Translator("en")("command.unknown", command=f"/{name}")


@pytest.mark.parametrize("name", [*sorted(COMMANDS), "dance"])
async def test_every_exported_command_is_run_and_no_other(name, load_consultation, chat) -> None:
    await load_consultation()
    eve: Chat = chat("eve", "en")
    await eve.start("elders")
    await eve.tap("accept")
    await eve.tap("skip")
    assert eve.last.card is not None  # voting: every command applies here

    await eve.command(name)

    assert eve.last_batch  # every command answers
    assert (_unknown(name) in eve.text) == (name not in COMMANDS)
