"""What the dashboard's Live page draws: participants and votes per day by channel and by
recruitment source, and engagement by the answers to each profile question.

Computed with the results snapshot (`core.results.recompute`), never on a page view: these
group the votes table, which is fine every few minutes, not on each request. Counts only: no
participant id, name or channel identifier leaves here. A recruitment source with fewer than
the consultation's `min_segment_size` participants is counted as "other", and an answer to a
profile question with fewer than that many participants shows no figure (as in the report).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import profile_questions_of, settings_of
from core.models import ChannelIdentity, Consultation, Participation, Proposal, Vote

OTHER = "other"  # sources too small to show apart, and participants with no source
NONE = "-"  # a vote whose participant has no channel identity left (forgotten)


def _day(value: Any) -> str:
    """A day bucket as ISO text: SQLite's date() gives text, PostgreSQL's a date."""
    return str(value)[:10]


def _series(rows: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {"day": day, "series": name, "count": count} for (day, name), count in sorted(rows.items())
    ]


async def live_figures(session: AsyncSession, consultation: Consultation) -> dict[str, Any]:
    """The Live page's figures (see the module docstring) as JSON-ready data:
    `participants_by_source`, `votes_by_channel`, `votes_by_source` (lists of day, series,
    count) and `engagement` (per profile question, per answer: participants and votes)."""
    assert consultation.id is not None
    minimum = settings_of(consultation).min_segment_size
    joined = await session.exec(
        select(
            Participation.participant_id,
            Participation.source,
            Participation.created_at,
            Participation.profile,
        ).where(Participation.consultation_id == consultation.id)
    )
    people = list(joined)
    sizes = Counter(source or OTHER for _, source, _, _ in people)
    shown = {s for s, n in sizes.items() if n >= minimum}
    source_of = {pid: (s if (s or OTHER) in shown else OTHER) or OTHER for pid, s, _, _ in people}
    joining: Counter[tuple[str, str]] = Counter(
        (_day(at), source_of[pid]) for pid, _, at, _ in people
    )
    # One channel per participant (the first by name) so that a vote is counted once.
    channel = (
        select(
            col(ChannelIdentity.participant_id).label("pid"),
            func.min(ChannelIdentity.channel).label("channel"),
        )
        .group_by(col(ChannelIdentity.participant_id))
        .subquery()
    )
    day = func.date(col(Vote.created_at))
    grouped = await session.exec(
        select(day, channel.c.channel, col(Vote.participant_id), func.count())
        .join(Proposal, col(Proposal.id) == col(Vote.proposal_id))
        .outerjoin(channel, channel.c.pid == col(Vote.participant_id))
        .where(Proposal.consultation_id == consultation.id)
        .group_by(day, channel.c.channel, col(Vote.participant_id))
    )
    by_channel: Counter[tuple[str, str]] = Counter()
    by_source: Counter[tuple[str, str]] = Counter()
    votes_of: Counter[int] = Counter()
    for when, name, pid, count in grouped:
        by_channel[(_day(when), name or NONE)] += count
        by_source[(_day(when), source_of.get(pid, OTHER))] += count
        votes_of[pid] += count
    return {
        "participants_by_source": _series(joining),
        "votes_by_channel": _series(by_channel),
        "votes_by_source": _series(by_source),
        "engagement": _engagement(consultation, people, votes_of, minimum),
    }


def _engagement(
    consultation: Consultation,
    people: list[Any],
    votes_of: Counter[int],
    minimum: int,
) -> list[dict[str, Any]]:
    """Per profile question and answer: participants and their votes (None below `minimum`)."""
    found = []
    for question in profile_questions_of(consultation):
        participants: Counter[str] = Counter()
        votes: dict[str, int] = defaultdict(int)
        for pid, _, _, profile in people:
            answer = (profile or {}).get(question.id)
            if answer is None:
                continue
            participants[answer] += 1
            votes[answer] += votes_of.get(pid, 0)
        answers = []
        for option in question.options:
            n = participants.get(option.id, 0)
            if n < minimum:
                answers.append({"option": option.id, "suppressed": True, "fewer_than": minimum})
            else:
                answers.append({"option": option.id, "participants": n, "votes": votes[option.id]})
        found.append({"question": question.id, "answers": answers})
    return found
