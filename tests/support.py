"""Test helpers: a settable clock, a participant who plays a conversation, proposals made
through the core or the conversation, and what sequencing's tests need to see the pools it
reads."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from core.definitions import settings_of
from core.flow import Flow
from core.messages import Choice, Command, Event, FormSubmit, Reply, Start, Text
from core.models import Proposal
from core.proposals import submit_proposal
from core.scoring import contender_scores
from core.sequencing import ALGORITHMS, Candidate, SequenceBuilder

_keys = itertools.count(1)


@dataclass
class Clock:
    now: datetime = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Chat:
    """One participant on one channel, sending events and keeping the replies."""

    flow: Flow
    user_id: str
    locale_hint: str | None = None
    channel: str = "test"
    replies: list[Reply] = field(default_factory=list)
    last_batch: list[Reply] = field(default_factory=list)

    def _sender(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "user_id": self.user_id,
            "key": f"k{next(_keys)}",
            "locale_hint": self.locale_hint,
        }

    async def send(self, event: Event) -> list[Reply]:
        self.last_batch = await self.flow.receive(event)
        self.replies.extend(self.last_batch)
        return self.last_batch

    async def start(self, payload: str = "") -> list[Reply]:
        return await self.send(Start(payload=payload, **self._sender()))

    async def type(self, text: str) -> list[Reply]:
        return await self.send(Text(text=text, **self._sender()))

    async def tap(self, option: str) -> list[Reply]:
        """Tap an option of the last pick; vote card options can be named by their key alone
        ("agree" for "agree.42"). An option that was not offered is sent as it is."""
        offered = [] if not self.last_batch or self.last.pick is None else self.last.pick.options
        full = next((o.id for o in offered if o.id.partition(".")[0] == option), option)
        return await self.send(Choice(option=full, **self._sender()))

    async def command(self, name: str, argument: str = "") -> list[Reply]:
        return await self.send(Command(name=name, argument=argument, **self._sender()))

    async def submit(self, form: str, **fields: str) -> list[Reply]:
        return await self.send(FormSubmit(form=form, fields=fields, **self._sender()))

    @property
    def last(self) -> Reply:
        return self.last_batch[-1]

    @property
    def text(self) -> str:
        """All text of the last batch of replies."""
        return "\n".join(reply.text for reply in self.last_batch)

    @property
    def options(self) -> list[str]:
        """The ids offered by the last reply, card options by their key ("agree")."""
        pick = self.last.pick
        return [] if pick is None else [option.id.partition(".")[0] for option in pick.options]

    async def enrol(self) -> Chat:
        """Start, consent and skip the profile question: the first card is shown."""
        await self.start()
        await self.tap("accept")
        await self.tap("skip")
        return self

    async def vote_everything(self) -> list[int]:
        """Agree to every card, sequence after sequence, until none is left; the cards shown."""
        shown = []
        while self.last.card is not None:
            shown.append(self.last.card)
            await self.tap("agree")
            if self.last.card is None and "skip" in self.options:
                await self.tap("skip")  # the qualification
            if self.last.card is None and "vote" in self.options:
                await self.tap("vote")  # another sequence
        return shown

    async def vote_sequence(self, key: str = "agree", qualify: str | None = "skip") -> int:
        """Answer cards until the sequence ends; returns how many cards were voted."""
        cards = 0
        while self.last.card is not None:
            await self.tap(key)
            cards += 1
            if qualify is not None and "skip" in self.options and self.last.card is None:
                await self.tap(qualify if qualify in self.options else "skip")
        return cards


def record_pools(monkeypatch: pytest.MonkeyPatch, algorithm: str) -> list[list[Candidate]]:
    """Puts in `algorithm`'s place one that records the pool each selection hands it (and
    chooses nothing): what `next_proposals_for` read, in its order."""
    pools: list[list[Candidate]] = []

    def recording(builder: SequenceBuilder, pool: Sequence[Candidate], rng: random.Random) -> None:
        pools.append(list(pool))

    monkeypatch.setitem(ALGORITHMS, algorithm, recording)
    return pools


def scored_proposal(
    consultation_id: int, ref: str, counts: dict[str, int], shuffle: float, created: datetime
) -> dict[str, Any]:
    """An accepted English proposal's row with these trusted counts (agree, disagree, neutral:
    every vote trusted) and the contender scores the votes would have left."""
    votes = sum(counts.values())
    agree_score, split_score = contender_scores(
        counts["agree"], counts["disagree"], counts["neutral"], votes
    )
    return {
        "consultation_id": consultation_id,
        "ref": ref,
        "locale": "en",
        "text": f"We should try idea {ref}",
        "status": "accepted",
        "vote_count": votes,
        **{f"{key}_count": count for key, count in counts.items()},
        "agree_score": agree_score,
        "split_score": split_score,
        "shuffle": shuffle,
        "created_at": created,
        "updated_at": created,
    }


async def submitted(
    sessions: Any,
    clock: Callable[[], datetime],
    consultation: Any,
    author: int,
    typed: str,
    locale: str = "en",
) -> int:
    """The id of a pending proposal `author` submits through the core, as typed, now."""
    async with sessions() as session, session.begin():
        proposal = await submit_proposal(
            session, author, consultation.id, typed, locale, settings_of(consultation), clock()
        )
        assert proposal.id is not None
        return int(proposal.id)


async def proposed_in_chat(chat: Any, sessions: Any, user: str, typed: str) -> int:
    """The id of the proposal `user` makes by playing the conversation in English: the
    propose command, the text, confirm."""
    author = await chat(user, "en").enrol()
    await author.command("propose")
    await author.type(typed)
    await author.tap("confirm")
    async with sessions() as session:
        query = select(Proposal.id).where(Proposal.text == f"We should {typed}")
        return int((await session.exec(query)).one())


async def status_of(sessions: Any, proposal_id: int) -> str:
    """The proposal's status as the database has it now."""
    async with sessions() as session:
        proposal = await session.get(Proposal, proposal_id)
        assert proposal is not None
        return str(proposal.status)


async def proposal_id_of(sessions: Any, fragment: str) -> int:
    """The id of the one proposal whose text contains `fragment`."""
    async with sessions() as session:
        found = await session.exec(select(Proposal.id).where(col(Proposal.text).contains(fragment)))
        proposal_id = found.one()
    assert proposal_id is not None
    return int(proposal_id)
