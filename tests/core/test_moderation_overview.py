"""What the console reads besides the queue, on both databases: a consultation's figures, the
filtered list bulk mode decides on, an author's other proposals (never the author)."""

from __future__ import annotations

from datetime import timedelta

from core.models import Participant, Participation, VoteKey
from core.moderation import Actor, Refuse, Source, decide
from core.moderation.overview import (
    author_other_proposals,
    consultation_overview,
    pending_counts,
    proposals_matching,
)
from core.voting import record_vote
from tests.support import submitted

ANA = Actor("ana@example.org", Source.CONSOLE)


async def _author(sessions, clock, consultation) -> int:
    async with sessions() as session, session.begin():
        participant = Participant(created_at=clock())
        session.add(participant)
        await session.flush()
        assert participant.id is not None
        session.add(
            Participation(
                participant_id=participant.id,
                consultation_id=consultation.id,
                created_at=clock(),
                updated_at=clock(),
            )
        )
        return participant.id


async def _propose(sessions, clock, consultation, author: int, *texts: str) -> list[int]:
    ids = []
    for typed in texts:
        ids.append(await submitted(sessions, clock, consultation, author, typed))
        clock.advance(minutes=10)
    return ids


async def test_the_overview_counts_participants_votes_statuses_and_the_backlog(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    async with sessions() as session:
        empty = await consultation_overview(session, consultation.id, clock())
    assert (empty.participants, empty.votes, empty.pending) == (0, 0, 0)
    assert empty.by_status["accepted"] == 28 and empty.oldest_pending_age is None

    ana = await _author(sessions, clock, consultation)
    ben = await _author(sessions, clock, consultation)
    first, second = await _propose(
        sessions, clock, consultation, ana, "We should open libraries", "We should plant trees"
    )
    async with sessions() as session, session.begin():
        await record_vote(session, ben, first, VoteKey.AGREE, trusted=True, now=clock())
        await decide(session, second, Refuse("off-topic"), ANA, clock())
    clock.advance(minutes=5)
    async with sessions() as session:
        figures = await consultation_overview(session, consultation.id, clock())
        counts = await pending_counts(session, None)
        none = await pending_counts(session, frozenset({consultation.id + 1}))
    assert (figures.participants, figures.votes, figures.pending) == (2, 1, 1)
    assert figures.by_status["refused"] == 1 and figures.by_status["pending"] == 1
    assert figures.oldest_pending_age == timedelta(minutes=25)
    assert counts == {consultation.id: 1} and none == {}


async def test_the_list_filters_by_status_words_and_flag(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    ana = await _author(sessions, clock, consultation)
    plain, link, percent = await _propose(
        sessions,
        clock,
        consultation,
        ana,
        "We should open LIBRARIES on Sundays",
        "We should read www.example.com every day",
        "We should cut taxes by 50% for libraries",
    )
    async with sessions() as session:
        pending, total = await proposals_matching(session, consultation.id)
        words, _ = await proposals_matching(session, consultation.id, search="libraries")
        escaped, _ = await proposals_matching(session, consultation.id, search="50%")
        wildcard, _ = await proposals_matching(session, consultation.id, search="%")
        flagged, _ = await proposals_matching(session, consultation.id, flag="link")
        part, _ = await proposals_matching(session, consultation.id, flag="lin")
        anything, every = await proposals_matching(session, consultation.id, status=None, limit=2)
        chosen, _ = await proposals_matching(
            session, consultation.id, status=None, ids=(plain, percent, 10_000)
        )
    assert [p.id for p in pending] == [plain, link, percent] and total == 3
    assert [p.id for p in words] == [plain, percent]  # whatever the case
    assert [p.id for p in escaped] == [percent] and [p.id for p in wildcard] == [percent]
    assert [p.id for p in flagged] == [link] and "link" in flagged[0].flags
    assert part == []  # a flag matches whole
    assert len(anything) == 2 and every == 31
    assert [p.id for p in chosen] == [plain, percent]


async def test_an_authors_other_proposals_never_name_the_author(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    ana = await _author(sessions, clock, consultation)
    ben = await _author(sessions, clock, consultation)
    first, second, third = await _propose(
        sessions,
        clock,
        consultation,
        ana,
        "We should open libraries",
        "We should plant trees",
        "We should light streets",
    )
    (others_proposal,) = await _propose(sessions, clock, consultation, ben, "We should sing")
    async with sessions() as session:
        others = await author_other_proposals(session, second)
        alone = await author_other_proposals(session, others_proposal)
        seed = await author_other_proposals(session, 1)
    assert [p.id for p in others] == [third, first]  # newest first, not the one asked about
    assert alone == [] and seed == []
    assert not any(hasattr(p, "author_id") for p in others)
