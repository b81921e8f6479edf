"""`consult serve` killed with SIGKILL under load on WhatsApp: no vote lost, none counted twice,
and no participant left without their next question.

Participants answer their questions through reply buttons and list rows over the real webhook,
each waiting for the question their answer leads to, as people do. They write to two business
numbers of one app, and the settings name neither: a participant resumed after the crash is
answered from the number their stored address names. Midway the server is killed (`kill -9`:
no shutdown, no flush) and started again. A delivery that got no 200 is delivered again, as
Meta does; a message answered 200 whose next question was lost with the process must still get
that question, from the restarted server (`core.outbox`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.fakes.whatsapp_api import (
    PHONE_NUMBER_ID,
    Call,
    FakeGraphAPI,
    button_reply,
    delivery,
    list_reply,
    signed,
    text_message,
)
from bench.processes import serving
from tests.adapters.whatsapp.conftest import APP_SECRET, VERIFY_TOKEN, WEBHOOK
from tests.conftest import Loader
from tests.crash import PARTICIPANTS, TAKEOVER, Answer, Load, Request, assert_nothing_lost

ONBOARDING = 4  # answers before the first card: start, language, consent, profile
# What a participant answers, by option id (before any "."), among those of the question shown
# last: English, consent, Agree on a card, and skip the profile and qualification questions.
PREFERENCE = ("en", "accept", "agree", "skip")
FIRST_WA_ID = 33_700_000_001
# One app, two business numbers; the settings name neither.
BUSINESS_NUMBERS = (PHONE_NUMBER_ID, "106540352242923")


class WhatsApp:
    """WhatsApp's side of the crash test: signed deliveries from Meta, participants by number,
    each writing to their business number."""

    def __init__(
        self, graph: FakeGraphAPI, client: httpx.AsyncClient, business: dict[str, str]
    ) -> None:
        self.graph = graph
        self.client = client
        self.business = business  # wa_id -> the business number they write to
        self.webhook = ""

    def server_at(self, url: str) -> None:
        self.webhook = f"{url}{WEBHOOK}"

    def listen(self, heard: Callable[[str], None]) -> None:
        def called(call: Call) -> None:  # in this loop
            to = call.body.get("to") if isinstance(call.body, dict) else None
            if isinstance(to, str):
                heard(to)

        self.graph.listeners.append(called)

    def delivered(self, wa_id: str, message: dict[str, Any]) -> Request:
        """`message` from `wa_id`, delivered again as it is (same message id, same signature)
        until it is answered 200."""
        wrapped = delivery(message, phone_number_id=self.business[wa_id])
        body, headers = signed(wrapped, APP_SECRET)
        return Request(
            message["id"], lambda: self.client.post(self.webhook, content=body, headers=headers)
        )

    def start(self, wa_id: str) -> Request:
        return self.delivered(wa_id, text_message(wa_id, "start elders"))

    def questions(self, wa_id: str) -> dict[int, dict[str, Any]]:
        """The interactive messages sent to `wa_id` (those that ask something), by their rank."""
        sent = self.graph.sent_to(wa_id)
        return dict(enumerate(m["interactive"] for m in sent if m["type"] == "interactive"))

    def answer(self, wa_id: str, rank: int, interactive: dict[str, Any]) -> Answer:
        options = _options(interactive)
        option = next(o for p in PREFERENCE for o in options if o.partition(".")[0] == p)
        reply = button_reply if interactive["type"] == "button" else list_reply
        agreed = int(option.partition(".")[2]) if option.startswith("agree.") else None
        return Answer(self.delivered(wa_id, reply(wa_id, option)), option, agreed)

    def recent(self, wa_id: str) -> str:
        bodies = [(c.status, c.body) for c in self.graph.calls if isinstance(c.body, dict)]
        calls = [(status, body.get("type")) for status, body in bodies if body.get("to") == wa_id]
        return str(calls[-4:])


def _options(interactive: dict[str, Any]) -> list[str]:
    action = interactive["action"]
    if interactive["type"] == "button":
        return [button["reply"]["id"] for button in action["buttons"]]
    return [row["id"] for section in action["sections"] for row in section["rows"]]


def environment(database_url: str, tmp_path: Path, graph: FakeGraphAPI, url: str) -> dict[str, str]:
    return {
        "CONSULT_DATABASE_URL": database_url,
        "CONSULT_DATA_DIR": str(tmp_path),
        "CONSULT_SECRET_KEY": "e2e-secret",
        "CONSULT_WHATSAPP_TOKEN": graph.token,
        "CONSULT_WHATSAPP_APP_SECRET": APP_SECRET,
        "CONSULT_WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "CONSULT_WHATSAPP_API_URL": url,
        "CONSULT_WHATSAPP_PHONE_NUMBER_ID": "",  # the address names the number to answer from
        "CONSULT_WHATSAPP_MESSAGES_PER_SECOND": "1000",
        "CONSULT_WEBHOOK_HANDLING_TIMEOUT": "60",
        **TAKEOVER,
        "LC_ALL": "en_US.UTF-8",
    }


async def test_a_killed_server_loses_no_vote_and_strands_nobody(
    database_url: str,
    tmp_path: Path,
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await load_consultation(settings={"sequence_size": 8, "summary_min_votes": 1})
    graph = FakeGraphAPI()
    numbers = [str(FIRST_WA_ID + i) for i in range(PARTICIPANTS)]
    business = {n: BUSINESS_NUMBERS[i % len(BUSINESS_NUMBERS)] for i, n in enumerate(numbers)}
    async with serving(graph.app()) as url, httpx.AsyncClient(timeout=60) as client:
        load = Load(WhatsApp(graph, client, business), onboarding=ONBOARDING)
        await load.play_through_a_kill(environment(database_url, tmp_path, graph, url), numbers)

    await assert_nothing_lost(load, sessions)
    # Each participant was answered from the business number they wrote to, resumed or not.
    assert {(call.body["to"], call.phone_number_id) for call in graph.calls} <= business.items()
    assert {call.status for call in graph.calls} == {200}
