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
from datetime import date, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import profile_questions_of, settings_of
from core.models import Consultation
from core.results.votes import VoteColumns, answer_columns, find, raw_rows, read_votes

OTHER = "other"  # sources too small to show apart, and participants with no source
NONE = "-"  # a vote whose participant has no channel identity left (forgotten)
EPOCH = date(1970, 1, 1)


def _day(value: Any) -> str:
    """A day bucket as ISO text: SQLite's date() gives text, PostgreSQL's a date."""
    return str(value)[:10]


def _series(rows: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {"day": day, "series": name, "count": count} for (day, name), count in sorted(rows.items())
    ]


async def live_figures(
    session: AsyncSession, consultation: Consultation, *, votes: VoteColumns | None = None
) -> dict[str, Any]:
    """The Live page's figures (see the module docstring) as JSON-ready data:
    `participants_by_source`, `votes_by_channel`, `votes_by_source` (lists of day, series,
    count) and `engagement` (per profile question, per answer: participants and votes).

    `votes`: the consultation's votes if the caller read them (`core.results.votes`); the
    votes are counted on arrays, and the participants read as plain rows, each profile
    answer picked out by the database: a consultation may have millions of both."""
    assert consultation.id is not None
    minimum = settings_of(consultation).min_segment_size
    questions = [q.id for q in profile_questions_of(consultation)]
    if votes is None:
        votes = await read_votes(session, consultation.id)
    sqlite, postgres = answer_columns(len(questions), 2)
    answers, answers_pg = (f", {sqlite}", f", {postgres}") if questions else ("", "")
    query = (
        "SELECT participant_id, coalesce(source, ''), {day}{answers} FROM participation "
        "WHERE consultation_id = {mark} ORDER BY participant_id"
    )
    people = await raw_rows(
        session,
        query.format(day="date(created_at)", answers=answers, mark="?1"),
        query.format(
            day="(created_at AT TIME ZONE 'UTC')::date::text", answers=answers_pg, mark="$1"
        ),
        (consultation.id, *questions),
    )
    sizes = Counter(source or OTHER for _, source, *_ in people)
    shown = {s for s, n in sizes.items() if n >= minimum}
    series = sorted(shown | {OTHER})
    ids = np.array([row[0] for row in people], dtype=np.int64)
    code = {name: i for i, name in enumerate(series)}
    source_of = np.array(
        [code[source] if source in shown else code[OTHER] for _, source, *_ in people],
        dtype=np.int64,
    )
    joining: Counter[tuple[str, str]] = Counter(
        (_day(row[2]), series[code]) for row, code in zip(people, source_of.tolist(), strict=True)
    )
    # One channel per participant (the first by name) so that a vote is counted once.
    first_channel = (
        "SELECT participant_id, min(channel) FROM channelidentity WHERE participant_id IN "
        "(SELECT participant_id FROM participation WHERE consultation_id = {mark}) "
        "GROUP BY participant_id ORDER BY participant_id"
    )
    channels = await raw_rows(
        session,
        first_channel.format(mark="?"),
        first_channel.format(mark="$1"),
        (consultation.id,),
    )
    names = sorted({name for _, name in channels} | {NONE})
    code_of = {name: i for i, name in enumerate(names)}
    channel_ids = np.array([pid for pid, _ in channels], dtype=np.int64)
    channel_codes = np.array([code_of[name] for _, name in channels], dtype=np.int64)
    channel = _lookup(votes.participant, channel_ids, channel_codes, code_of[NONE])
    source = _lookup(votes.participant, ids, source_of, code[OTHER])
    by_channel = _per_day(votes, names, channel)
    by_source = _per_day(votes, series, source)
    starts = votes.starts()
    voters = votes.participant[starts[:-1]]
    votes_of = dict(zip(voters.tolist(), np.diff(starts).tolist(), strict=True))
    return {
        "participants_by_source": _series(joining),
        "votes_by_channel": _series(by_channel),
        "votes_by_source": _series(by_source),
        "engagement": _engagement(consultation, people, votes_of, minimum),
    }


def _lookup(
    keys: NDArray[np.int64], ids: NDArray[np.int64], codes: NDArray[np.int64], missing: int
) -> NDArray[np.int64]:
    """`codes[i]` for each key equal to `ids[i]` (`ids` sorted), else `missing`."""
    if not len(ids):
        return np.full(len(keys), missing, dtype=np.int64)
    at, found = find(ids, keys)
    return np.where(found, codes[at], missing)


def _per_day(
    votes: VoteColumns, names: list[str], codes: NDArray[np.int64]
) -> Counter[tuple[str, str]]:
    """Votes per (UTC day, series name), each vote's series given by `codes`."""
    day = votes.at // 86_400_000
    pairs, counts = np.unique(day * len(names) + codes, return_counts=True)
    return Counter(
        {
            (_epoch_day(pair // len(names)), names[pair % len(names)]): count
            for pair, count in zip(pairs.tolist(), counts.tolist(), strict=True)
        }
    )


def _epoch_day(days: int) -> str:
    return (EPOCH + timedelta(days=days)).isoformat()


def _engagement(
    consultation: Consultation,
    people: list[Any],
    votes_of: dict[int, int],
    minimum: int,
) -> list[dict[str, Any]]:
    """Per profile question and answer: participants and their votes (None below `minimum`).
    `people`: rows of participant id, source, day joined, then each question's answer."""
    found = []
    for index, question in enumerate(profile_questions_of(consultation)):
        participants: Counter[str] = Counter()
        votes: dict[str, int] = defaultdict(int)
        for row in people:
            answer = row[3 + index]
            if answer is None:
                continue
            participants[answer] += 1
            votes[answer] += votes_of.get(row[0], 0)
        answers = []
        for option in question.options:
            n = participants.get(option.id, 0)
            if n < minimum:
                answers.append({"option": option.id, "suppressed": True, "fewer_than": minimum})
            else:
                answers.append({"option": option.id, "participants": n, "votes": votes[option.id]})
        found.append({"question": question.id, "answers": answers})
    return found
