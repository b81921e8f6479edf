"""The terminal channel: numbered choices, typed answers, commands, end of input."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from adapters.terminal import TerminalSession, render_reply
from core.messages import Option, Pick, Reply


def test_a_pick_is_rendered_as_a_numbered_list() -> None:
    reply = Reply(
        "Proposal 1/12\n\nWe should <b>open</b> *late*",
        Pick((Option("agree", "Agree"), Option("skip", "Skip", "see another one"))),
        card=3,
    )
    assert render_reply(reply) == (
        "Proposal 1/12\n\nWe should <b>open</b> *late*\n\n"
        "  1. Agree\n  2. Skip\n     see another one"
    )


def test_plain_text_is_rendered_as_is() -> None:
    assert render_reply(Reply("Merci !")) == "Merci !"


async def _lines(lines: Iterable[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line + "\n"


async def test_a_scripted_session_votes_and_proposes(load_consultation, flow) -> None:
    await load_consultation()
    output: list[str] = []
    session = TerminalSession(flow, output.append, user_id="ana", locale_hint="en_GB", echo=True)
    script = ["1", "", "2"]  # consent, a blank line (ignored), profile answer
    script += ["1", "1", "2", "4", "3", "2", "4"]  # four cards with qualifications and a skip
    script += ["/results", "2", "plant trees around care homes", "1", "3"]
    await session.run(_lines(script), payload="elders__flyer")
    transcript = "".join(output)
    assert "Welcome! This consultation asks: How can we better care for our elders?" in transcript
    assert "  1. I agree\n  2. I decline" in transcript
    assert "Proposal 4/4" in transcript
    assert "The proposals most agreed on so far" in transcript
    assert "Your proposal:\n\nWe should plant trees around care homes\n\nSend it?" in transcript
    assert "moderators" in transcript
    assert transcript.rstrip().endswith("Write to me any time to carry on.")
    assert "> plant trees around care homes" in transcript


async def test_end_of_input_right_away_only_greets(load_consultation, flow) -> None:
    await load_consultation()
    output: list[str] = []
    await TerminalSession(flow, output.append, user_id="bo").run(_lines([]))
    assert "Bienvenue" in "".join(output)
