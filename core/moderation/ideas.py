"""Ideas: a named group of a consultation's proposals that say the same, made by moderators
(from the similar proposals they are shown), so that results can show them together.

A proposal belongs to one idea at most: adding it to another moves it. Every change is an
organiser's action in the audit log; the name is the organiser's words, never a participant's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Idea, IdeaProposal, Proposal
from core.moderation.actors import Actor
from core.moderation.errors import ModerationError, UnknownProposal
from core.moderation.history import record_action

NAME_LENGTH = 200


class UnknownIdea(ModerationError):
    """No idea has this id."""

    def __init__(self, idea_id: int) -> None:
        super().__init__(f"no idea {idea_id}")
        self.idea_id = idea_id


class IdeaNameRefused(ModerationError):
    """An idea's name is empty, longer than NAME_LENGTH, or another idea's of the same
    consultation (`taken`)."""

    def __init__(self, name: str, *, taken: bool) -> None:
        super().__init__(f"{name!r} is taken" if taken else f"{name!r} is not a name")
        self.name = name
        self.taken = taken


@dataclass(frozen=True)
class IdeaView:
    id: int
    consultation_id: int
    name: str
    proposal_ids: tuple[int, ...]


async def _proposals_of(
    session: AsyncSession, consultation_id: int, proposal_ids: Iterable[int]
) -> list[int]:
    """The ids, sorted, once each; raises UnknownProposal for one not in the consultation."""
    wanted = sorted(set(proposal_ids))
    if not wanted:
        return []
    found = set(
        await session.exec(
            select(Proposal.id).where(
                col(Proposal.id).in_(wanted), Proposal.consultation_id == consultation_id
            )
        )
    )
    for proposal_id in wanted:
        if proposal_id not in found:
            raise UnknownProposal(proposal_id)
    return wanted


async def _group(
    session: AsyncSession, idea: Idea, proposal_ids: list[int], now: datetime
) -> dict[int, int]:
    """Put the proposals in `idea`; the ideas they were moved from, by proposal."""
    assert idea.id is not None
    current = {
        row.proposal_id: row
        for row in await session.exec(
            select(IdeaProposal).where(col(IdeaProposal.proposal_id).in_(proposal_ids))
        )
    }
    moved = {}
    for proposal_id in proposal_ids:
        row = current.get(proposal_id)
        if row is None:
            session.add(IdeaProposal(proposal_id=proposal_id, idea_id=idea.id, added_at=now))
        elif row.idea_id != idea.id:
            moved[proposal_id] = row.idea_id
            row.idea_id, row.added_at = idea.id, now
            session.add(row)
    await session.flush()
    return moved


async def _view(session: AsyncSession, idea: Idea) -> IdeaView:
    assert idea.id is not None
    members = await session.exec(
        select(IdeaProposal.proposal_id)
        .where(IdeaProposal.idea_id == idea.id)
        .order_by(col(IdeaProposal.proposal_id))
    )
    return IdeaView(idea.id, idea.consultation_id, idea.name, tuple(members))


async def create_idea(
    session: AsyncSession,
    consultation_id: int,
    name: str,
    actor: Actor,
    now: datetime,
    proposal_ids: Iterable[int] = (),
) -> IdeaView:
    """A new idea named `name` (spaces tidied), grouping `proposal_ids` (moved from their
    idea if they had one), in the caller's transaction.

    Raises, changing nothing: IdeaNameRefused; UnknownProposal (not in the consultation).
    """
    name = " ".join(name.split())
    if not name or len(name) > NAME_LENGTH:
        raise IdeaNameRefused(name, taken=False)
    taken = await session.exec(
        select(Idea.id).where(Idea.consultation_id == consultation_id, Idea.name == name)
    )
    if taken.first() is not None:
        raise IdeaNameRefused(name, taken=True)
    members = await _proposals_of(session, consultation_id, proposal_ids)
    idea = Idea(
        consultation_id=consultation_id, name=name, created_by=actor.organiser, created_at=now
    )
    session.add(idea)
    await session.flush()
    moved = await _group(session, idea, members, now)
    detail = {"name": name, "proposals": members, "moved_from": moved}
    await record_action(
        session, actor, "idea.create", f"idea:{idea.id}", consultation_id, now, detail
    )
    return await _view(session, idea)


async def add_to_idea(
    session: AsyncSession,
    idea_id: int,
    proposal_ids: Iterable[int],
    actor: Actor,
    now: datetime,
) -> IdeaView:
    """Group more proposals in an idea (moved from their idea if they had one), in the
    caller's transaction. Raises, changing nothing: UnknownIdea; UnknownProposal."""
    idea = await session.get(Idea, idea_id)
    if idea is None:
        raise UnknownIdea(idea_id)
    members = await _proposals_of(session, idea.consultation_id, proposal_ids)
    moved = await _group(session, idea, members, now)
    detail = {"proposals": members, "moved_from": moved}
    await record_action(
        session, actor, "idea.add", f"idea:{idea_id}", idea.consultation_id, now, detail
    )
    return await _view(session, idea)


async def ideas_of(session: AsyncSession, consultation_id: int) -> list[IdeaView]:
    """A consultation's ideas, oldest first, each with its proposals' ids (ascending)."""
    ideas = list(
        await session.exec(
            select(Idea).where(Idea.consultation_id == consultation_id).order_by(col(Idea.id))
        )
    )
    members: dict[int, list[int]] = {idea.id: [] for idea in ideas if idea.id is not None}
    if members:
        rows = await session.exec(
            select(IdeaProposal.idea_id, IdeaProposal.proposal_id)
            .where(col(IdeaProposal.idea_id).in_(list(members)))
            .order_by(col(IdeaProposal.proposal_id))
        )
        for idea_id, proposal_id in rows:
            members[idea_id].append(proposal_id)
    return [
        IdeaView(idea.id, consultation_id, idea.name, tuple(members[idea.id]))
        for idea in ideas
        if idea.id is not None
    ]
