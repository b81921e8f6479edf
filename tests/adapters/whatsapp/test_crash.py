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

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
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
from bench.processes import Served, consult_process, serving
from core.models import OwedReply, ProcessedEvent, Proposal, Vote
from tests.adapters.whatsapp.conftest import APP_SECRET, VERIFY_TOKEN, WEBHOOK
from tests.conftest import Loader

PARTICIPANTS = 30
VOTES = 5  # after onboarding (start, language, consent, profile), each with its qualification
TAPS = 4 + 2 * VOTES
KILL_AFTER = PARTICIPANTS * TAPS // 3  # acknowledged messages before the kill
# What a participant answers, by option id (before any "."), among those of the question shown
# last: English, consent, Agree on a card, and skip the profile and qualification questions.
PREFERENCE = ("en", "accept", "agree", "skip")
FIRST_WA_ID = 33_700_000_001
# One app, two business numbers; the settings name neither.
BUSINESS_NUMBERS = (PHONE_NUMBER_ID, "106540352242923")
# How long a participant waits for their next question: long enough for a restart and for the
# dead worker's replies to be taken over (CONSULT_DELIVERY_STALE_SECONDS below).
PATIENCE = 60.0

T = TypeVar("T")


class Load:
    """The participants' side: the server they write to, and what they were shown."""

    def __init__(self, graph: FakeGraphAPI) -> None:
        self.graph = graph
        self.webhook = ""
        self.called: dict[str, asyncio.Event] = {}  # set when the bot sends to a number
        graph.listeners.append(self.heard)
        self.up = asyncio.Event()
        self.acknowledged = 0
        self.messages: set[str] = set()  # the ids of the messages answered 200
        self.voted: dict[str, set[int]] = {}  # number -> proposals it answered Agree to
        self.stranded: list[str] = []
        self.killed = asyncio.Event()
        self.enough = asyncio.Event()

    async def post(self, client: httpx.AsyncClient, message: dict[str, Any], business: str) -> None:
        """Deliver `message` until the webhook answers 200, as Meta does, across a restart."""
        body, headers = signed(delivery(message, phone_number_id=business), APP_SECRET)
        while True:
            await self.up.wait()
            try:
                answer = await client.post(self.webhook, content=body, headers=headers)
            except httpx.TransportError:  # killed under us: Meta keeps the delivery
                answer = None
            if answer is not None and answer.status_code == 200:
                break
            if answer is not None and answer.status_code not in (500, 502, 503):
                raise AssertionError(f"webhook answered {answer.status_code}: {answer.text}")
            await self.killed.wait()  # only a kill makes an answer fail here; then retry
        self.acknowledged += 1
        self.messages.add(message["id"])
        if self.acknowledged >= KILL_AFTER:
            self.enough.set()

    def heard(self, call: Call) -> None:
        """The fake's listener (in this loop): wake whoever waits on that number."""
        to = call.body.get("to") if isinstance(call.body, dict) else None
        if to in self.called:
            self.called[to].set()

    def questions(self, wa_id: str) -> list[dict[str, Any]]:
        """The interactive messages sent to `wa_id` (those that ask something), in order."""
        return [m["interactive"] for m in self.graph.sent_to(wa_id) if m["type"] == "interactive"]

    async def answer(self, client: httpx.AsyncClient, wa_id: str, business: str) -> None:
        """Answer the question shown last with the preferred option, and wait for the question
        it leads to (after a crash, perhaps one asked again)."""
        asked = self.questions(wa_id)
        shown = asked[-1]
        options = _options(shown)
        option = next(o for p in PREFERENCE for o in options if o.partition(".")[0] == p)
        reply = button_reply if shown["type"] == "button" else list_reply
        await self.post(client, reply(wa_id, option), business)
        if option.startswith("agree."):  # the option is "agree.<proposal id>"
            self.voted.setdefault(wa_id, set()).add(int(option.partition(".")[2]))
        if not await self.new_question(wa_id, len(asked)):
            self.stranded.append(wa_id)
            raise AssertionError(f"{wa_id} got no question after {option!r}")

    async def new_question(self, wa_id: str, before: int) -> bool:
        """Whether more than `before` questions reach `wa_id` within PATIENCE."""
        called = self.called.setdefault(wa_id, asyncio.Event())
        deadline = asyncio.get_running_loop().time() + PATIENCE
        while len(self.questions(wa_id)) <= before:
            called.clear()
            if len(self.questions(wa_id)) > before:  # a call landed before the clear
                break
            try:
                await asyncio.wait_for(called.wait(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                return False
        return True

    async def play(self, client: httpx.AsyncClient, wa_id: str, business: str) -> None:
        await self.post(client, text_message(wa_id, "start elders"), business)
        assert await self.new_question(wa_id, 0), f"{wa_id} was not welcomed"
        for _ in range(TAPS * 3):
            if len(self.voted.get(wa_id, ())) == VOTES:
                return
            await self.answer(client, wa_id, business)
        raise AssertionError(f"{wa_id} did not get through {VOTES} votes")


def _options(interactive: dict[str, Any]) -> list[str]:
    action = interactive["action"]
    if interactive["type"] == "button":
        return [button["reply"]["id"] for button in action["buttons"]]
    return [row["id"] for section in action["sections"] for row in section["rows"]]


@contextlib.asynccontextmanager
async def in_thread(manager: contextlib.AbstractContextManager[T]) -> AsyncIterator[T]:
    """`manager` entered and left in a thread, so that this loop keeps serving the fake Graph
    API meanwhile (a server stopping gracefully sends what it still has)."""
    value = await asyncio.to_thread(manager.__enter__)
    try:
        yield value
    except BaseException as error:
        if not await asyncio.to_thread(manager.__exit__, type(error), error, error.__traceback__):
            raise
    else:
        await asyncio.to_thread(manager.__exit__, None, None, None)


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
        "CONSULT_DELIVERY_BEAT_SECONDS": "0.2",
        "CONSULT_DELIVERY_STALE_SECONDS": "1",
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
    load = Load(graph)
    numbers = [str(FIRST_WA_ID + i) for i in range(PARTICIPANTS)]
    business = {n: BUSINESS_NUMBERS[i % len(BUSINESS_NUMBERS)] for i, n in enumerate(numbers)}
    async with (
        serving(graph.app()) as url,
        contextlib.AsyncExitStack() as servers,
        httpx.AsyncClient(timeout=60) as client,
    ):
        env = environment(database_url, tmp_path, graph, url)

        async def start() -> Served:
            served = await servers.enter_async_context(in_thread(consult_process(env)))
            load.webhook = f"{served.url}{WEBHOOK}"
            load.up.set()
            return served

        first = await start()
        playing = asyncio.gather(*(load.play(client, n, business[n]) for n in numbers))
        waiting: set[asyncio.Future[Any]] = {asyncio.ensure_future(load.enough.wait()), playing}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        assert not playing.done(), "the load ended before the kill"
        load.up.clear()
        os.kill(first.pid, signal.SIGKILL)
        load.killed.set()
        killed_at = load.acknowledged
        await start()
        await playing

    assert load.stranded == []
    assert PARTICIPANTS * 3 // 2 < killed_at < load.acknowledged  # the kill came mid-load
    # Each participant was answered from the business number they wrote to, resumed or not.
    assert {(call.body["to"], call.phone_number_id) for call in graph.calls} <= business.items()
    assert {call.status for call in graph.calls} == {200}
    async with sessions() as session:
        votes = (await session.exec(select(Vote.proposal_id))).all()
        counted = (await session.exec(select(func.sum(Proposal.vote_count)))).one()
        events = (await session.exec(select(func.count()).select_from(ProcessedEvent))).one()
        owed = (await session.exec(select(func.count()).select_from(OwedReply))).one()
    answered = Counter(proposal for agreed in load.voted.values() for proposal in agreed)
    assert Counter(votes) == answered  # no vote lost, none made up
    assert counted == len(votes) == PARTICIPANTS * VOTES  # none counted twice
    assert events == len(load.messages)  # every message answered was processed, once
    assert owed == 0  # every reply sent was settled, the killed server's included
