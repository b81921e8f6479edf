"""Whole conversations over HTTP: signed webhooks into the app under uvicorn, replies read
from the fake Graph API, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlmodel import func, select

from adapters.whatsapp import whatsapp_link
from bench.fakes.whatsapp_api import button_reply, delivery, list_reply, text_message
from core.models import ChannelIdentity, Participation, Proposal, Qualification, Vote
from tests.adapters.whatsapp.conftest import Running


@dataclass
class Phone:
    """One participant's WhatsApp: sends signed messages, reads what the business sent back."""

    running: Running
    wa_id: str
    batch: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, message: dict[str, Any]) -> None:
        before = len(self.running.graph.sent_to(self.wa_id))
        answer = await self.running.deliver(delivery(message))
        assert answer.status_code == 200
        self.batch = self.running.graph.sent_to(self.wa_id)[before:]
        assert self.batch, "no reply"

    async def type(self, text: str) -> None:
        await self.send(text_message(self.wa_id, text))

    async def tap(self, key: str) -> None:
        """Tap the button or list row whose option id is `key` (or starts with "key.")."""
        interactive = self.interactive
        ids = [option_id for option_id, _ in self.choices]
        option = next(i for i in ids if key in (i, i.partition(".")[0]))
        if interactive["type"] == "button":
            await self.send(button_reply(self.wa_id, option))
        else:
            await self.send(list_reply(self.wa_id, option))

    @property
    def interactive(self) -> dict[str, Any]:
        last = self.batch[-1]
        assert last["type"] == "interactive", f"the last message has no choice: {last}"
        interactive: dict[str, Any] = last["interactive"]
        return interactive

    @property
    def choices(self) -> list[tuple[str, str]]:
        """(option id, title) of the last message's buttons or list rows."""
        interactive = self.interactive
        if interactive["type"] == "button":
            return [
                (b["reply"]["id"], b["reply"]["title"]) for b in interactive["action"]["buttons"]
            ]
        rows = interactive["action"]["sections"][0]["rows"]
        return [(row["id"], row["title"]) for row in rows]

    @property
    def options(self) -> list[str]:
        return [option_id.partition(".")[0] for option_id, _ in self.choices]

    @property
    def text(self) -> str:
        return "\n".join(
            m["text"]["body"] if m["type"] == "text" else m["interactive"]["body"]["text"]
            for m in self.batch
        )


async def test_a_participant_takes_part_from_a_wa_me_link_to_forget(
    running: Running, load_consultation
) -> None:
    await load_consultation()
    link = whatsapp_link("+1 555 078 3881", "elders__wame")
    (prefilled,) = parse_qs(urlsplit(link).query)["text"]
    kerry = Phone(running, "16315551181")

    await kerry.type(prefilled)
    assert "Bienvenue" in kerry.text  # no language hint on WhatsApp: the consultation's default
    assert kerry.interactive["type"] == "button"
    assert kerry.choices == [("fr", "Français"), ("en", "English")]

    await kerry.tap("en")
    assert kerry.options == ["accept", "decline"]
    await kerry.tap("accept")
    assert kerry.options == ["young", "old", "skip"]
    await kerry.tap("skip")

    assert "How can we better care for our elders?" in kerry.text
    assert kerry.interactive["type"] == "list"
    assert kerry.interactive["action"]["button"] == "Choose"
    assert kerry.interactive["body"]["text"].startswith("Proposal 1/4")
    assert kerry.options == ["agree", "disagree", "neutral", "skip"]
    await kerry.tap("agree")
    assert kerry.options == ["likeIt", "doable", "platitudeAgree", "skip"]
    await kerry.tap("likeIt")
    await kerry.tap("disagree")
    await kerry.tap("skip")
    await kerry.type("3")  # a list row can also be answered by its number: Neutral
    await kerry.tap("doNotCare")
    await kerry.tap("skip")  # the fourth card

    assert "Here is how other participants voted" in kerry.text
    assert kerry.options == ["vote", "propose", "stop"]
    await kerry.tap("propose")
    assert "We should" in kerry.text
    await kerry.type("visit lonely neighbours every Sunday")
    assert kerry.options == ["confirm", "edit", "cancel"]
    await kerry.tap("confirm")
    assert kerry.options == ["vote", "propose", "stop"]

    flow = running.channel.flow
    assert flow is not None
    async with flow.sessions() as session:
        votes = sorted(v.key for v in await session.exec(select(Vote)))
        assert votes == ["agree", "disagree", "neutral"]
        qualifications = sorted(q.key for q in await session.exec(select(Qualification)))
        assert qualifications == ["doNotCare", "likeIt"]
        mine = (await session.exec(select(Proposal).where(Proposal.author_id.is_not(None)))).one()
        assert mine.text == "We should visit lonely neighbours every Sunday"
        assert mine.status == "pending"
        assert (await session.exec(select(Participation))).one().source == "wame"

    await kerry.type("/forget")
    assert kerry.options == ["yes", "no"]
    await kerry.tap("yes")
    async with flow.sessions() as session:
        identities = select(func.count()).select_from(ChannelIdentity)
        assert (await session.exec(identities)).one() == 0
        assert (await session.exec(select(func.count()).select_from(Vote))).one() == 3

    # Everything sent was accepted by the (strict) fake, first time, from the right number.
    sender = running.channel.sender
    assert sender.failed == 0 and sender.retried == 0 and sender.refused_outside_window == 0
    assert {call.status for call in running.graph.calls} == {200}
    assert {call.phone_number_id for call in running.graph.calls} == {"106540352242922"}


async def test_a_french_participant_reads_lists_in_french(
    running: Running, load_consultation
) -> None:
    await load_consultation()
    lea = Phone(running, "33612345678")
    await lea.type("start elders")
    await lea.tap("fr")
    assert lea.options == ["accept", "decline"]
    await lea.tap("accept")
    await lea.tap("old")
    assert lea.interactive["body"]["text"].startswith("Proposition 1/4")
    assert lea.interactive["action"]["button"] == "Choisir"
