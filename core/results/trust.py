"""Anti-trolling: a trust level per participant, from how they behaved.

A participant is untrusted when one of these rules holds (each names itself in `reasons`):

- `too_fast`: at least half of their timed cards (and at least `min_timed` of them) were
  answered faster than a person can read them. A card is timed by the gap between the vote on
  it and the participant's vote before (the next card is shown right after an answer; a gap
  over `session_gap_seconds` starts a new visit and is not timed). Reading takes the card's
  length at `chars_per_second`, plus `tap_seconds` to see it and tap. Adults read silently
  about 238 words a minute, some 24 characters a second (Brysbaert 2019, "How many words do we
  read per minute? A review and meta-analysis of reading rate", J. Memory and Language 109);
  the default, 50 characters a second, is twice that: only answers no reader could give
  count as too fast.
- `same_answer`: the same answer on at least a whole sequence of cards in a row
  (`sequence_size`, the consultation's), and on `min_same_answers` (8) at least: with short
  sequences, a run of four alike is what chance gives one honest person in three.
- `source_burst`: they joined in a burst from one recruitment source (`burst_size` people or
  more within `burst_minutes`, the thresholds moderation flags use) whose members vote as one
  (at least `burst_agreement` of their votes, theirs and the burst's, with the burst's
  majority on each proposal). A campaign that brings many honest people at once does not
  trip it: honest people differ.
- `one_proposal`: a new identity (its first vote within `new_identity_hours` of its creation)
  whose every vote is one answer on one proposal, cast outside a sequence (through a link to
  that proposal: in a sequence the card is chosen for the participant, so a sequence cannot be
  aimed at a proposal, and many honest people stop after their first card), alongside at
  least `crowd - 1` others that did exactly the same.
- `pushed_links`: answers cast outside a sequence (through a proposal's link) on two or more
  proposals that those links push: on a pushed proposal, the link votes take one answer far
  more often than the sequences' votes do (by `push_gap` or more, and a two-proportion z above
  `push_z`); and `crowd - 1` others gave the same pushed answers. A sequence shows each card to
  whom it chooses, so its votes are the honest reference: people who follow a link an
  organiser shared answer as the sequences do, while accounts sent to push a list of
  proposals do exactly what they were told, however honestly they behave otherwise.

A network address would tell more (many identities from one address), but none of our
channels gives one: Telegram, WhatsApp and Slack deliver a user id, never the sender's
address; the rule waits for a channel (a web widget) that does.

Untrusted participants' votes are kept; `exclude_untrusted` (a consultation setting) leaves them
out of the results' scores, and the results say how many were left out either way.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import insert
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import settings_of
from core.models import (
    Consultation,
    ParticipantTrust,
    Proposal,
    Qualification,
)
from core.results.votes import (
    KEYS,
    MS_POSTGRES,
    MS_SQLITE,
    VoteColumns,
    find,
    raw_rows,
    read_votes,
)
from core.scoring import ProposalCounts

K = TypeVar("K")  # an answer, as a key (by name) or a code (`core.results.votes.KEYS`)


class Level(StrEnum):
    TRUSTED = "trusted"
    UNTRUSTED = "untrusted"


class Reason(StrEnum):
    TOO_FAST = "too_fast"
    SAME_ANSWER = "same_answer"
    SOURCE_BURST = "source_burst"
    ONE_PROPOSAL = "one_proposal"
    PUSHED_LINKS = "pushed_links"


@dataclass(frozen=True)
class Card:
    """One vote as trust reads it: on which proposal, which answer, when, how long the card's
    text is (characters), and whether it was cast in a sequence (`Vote.trusted`)."""

    proposal_id: int
    key: str
    at: datetime
    chars: int
    in_sequence: bool = True


@dataclass(frozen=True)
class Behaviour:
    """What one participant did in one consultation; `cards` oldest first."""

    participant_id: int
    source: str | None
    joined_at: datetime
    created_at: datetime
    cards: tuple[Card, ...]


@dataclass(frozen=True)
class TrustRules:
    """The thresholds of the rules (see the module docstring)."""

    chars_per_second: float = 50.0
    tap_seconds: float = 1.0
    fast_share: float = 0.5
    min_timed: int = 5
    session_gap_seconds: float = 30 * 60
    sequence_size: int = 12
    min_same_answers: int = 8
    burst_minutes: int = 10
    burst_size: int = 20
    burst_agreement: float = 0.8
    new_identity_hours: float = 24
    crowd: int = 5
    push_gap: float = 0.25
    push_z: float = 3.0


@dataclass(frozen=True)
class Verdict:
    participant_id: int
    level: Level
    reasons: tuple[Reason, ...] = field(default=())


def reading_seconds(chars: int, rules: TrustRules) -> float:
    """The least time a person takes to read a card of `chars` characters and tap."""
    return rules.tap_seconds + chars / rules.chars_per_second


@dataclass(frozen=True)
class People:
    """A consultation's participants as columns: `participant` (sorted), the index of each one's
    recruitment source in `sources` (-1: none), when they joined it and when their identity
    was created (milliseconds since the epoch)."""

    participant: NDArray[np.int64]
    source: NDArray[np.int64]
    sources: tuple[str, ...]
    joined: NDArray[np.int64]
    created: NDArray[np.int64]


def _ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def columns_of(
    behaviours: Sequence[Behaviour],
) -> tuple[People, VoteColumns, NDArray[np.float64]]:
    """`behaviours` as the columns the rules read: the people, their votes (each one's oldest
    first) and each vote's card length in characters."""
    ordered = sorted(behaviours, key=lambda b: b.participant_id)
    sources = tuple(sorted({b.source for b in ordered if b.source}))
    index = {name: i for i, name in enumerate(sources)}
    people = People(
        np.array([b.participant_id for b in ordered], dtype=np.int64),
        np.array([index.get(b.source or "", -1) for b in ordered], dtype=np.int64),
        sources,
        np.array([_ms(b.joined_at) for b in ordered], dtype=np.int64),
        np.array([_ms(b.created_at) for b in ordered], dtype=np.int64),
    )
    cards = [(b.participant_id, c) for b in ordered for c in b.cards]
    codes = {key: i for i, key in enumerate(KEYS)}
    votes = VoteColumns(
        np.array([pid for pid, _ in cards], dtype=np.int64),
        np.array([c.proposal_id for _, c in cards], dtype=np.int64),
        np.array([codes.get(c.key, 2) for _, c in cards], dtype=np.int8),
        np.array([_ms(c.at) for _, c in cards], dtype=np.int64),
        np.array([c.in_sequence for _, c in cards], dtype=bool),
    )
    chars = np.array([c.chars for _, c in cards], dtype=np.float64)
    return people, votes, chars


def assess(behaviours: Sequence[Behaviour], rules: TrustRules) -> dict[int, Verdict]:
    """Every participant's verdict (all rules, every reason that holds)."""
    people, votes, chars = columns_of(behaviours)
    reasons = assess_columns(people, votes, chars, rules)
    return {
        b.participant_id: Verdict(
            b.participant_id,
            Level.UNTRUSTED if b.participant_id in reasons else Level.TRUSTED,
            reasons.get(b.participant_id, ()),
        )
        for b in behaviours
    }


def assess_columns(
    people: People, votes: VoteColumns, chars: NDArray[np.float64], rules: TrustRules
) -> dict[int, tuple[Reason, ...]]:
    """The untrusted participants and the reasons that hold for each, in `Reason`'s order.

    `votes` sorted by participant then time (`VoteColumns`), only of `people`; `chars[i]` the
    length of vote i's card. Everything per vote is done on arrays: at ten million votes a
    Python object per vote would cost minutes; only the few suspects are looked at one by one.
    """
    starts = votes.starts()
    ids = votes.participant[starts[:-1]]
    row = np.repeat(np.arange(len(ids)), np.diff(starts))
    found: dict[Reason, NDArray[np.int64]] = {
        Reason.TOO_FAST: ids[_too_fast(votes, row, len(ids), chars, rules)],
        Reason.SAME_ANSWER: ids[_same_answer(votes, row, len(ids), rules)],
        Reason.SOURCE_BURST: _source_bursts(people, votes, starts, ids, rules),
        Reason.ONE_PROPOSAL: _one_proposal_crowds(people, votes, starts, ids, rules),
        Reason.PUSHED_LINKS: _pushed_links(votes, row, ids, rules),
    }
    reasons: dict[int, list[Reason]] = defaultdict(list)
    for reason in Reason:
        for pid in found[reason].tolist():
            reasons[pid].append(reason)
    return {pid: tuple(why) for pid, why in reasons.items()}


def _too_fast(
    votes: VoteColumns,
    row: NDArray[np.int64],
    people: int,
    chars: NDArray[np.float64],
    rules: TrustRules,
) -> NDArray[np.bool_]:
    """Per row: at least `fast_share` of the timed cards (and `min_timed` of them) answered
    faster than reading allows. A card is timed by the gap since the same participant's vote
    before, unless the gap is a new visit (over `session_gap_seconds`)."""
    same = row[1:] == row[:-1]
    gap = (votes.at[1:] - votes.at[:-1]) / 1000.0
    timed = same & (gap <= rules.session_gap_seconds)
    fast = timed & (gap < rules.tap_seconds + chars[1:] / rules.chars_per_second)
    timed_n = np.bincount(row[1:][timed], minlength=people)
    fast_n = np.bincount(row[1:][fast], minlength=people)
    result: NDArray[np.bool_] = (timed_n >= rules.min_timed) & (
        fast_n >= rules.fast_share * timed_n
    )
    return result


def _same_answer(
    votes: VoteColumns, row: NDArray[np.int64], people: int, rules: TrustRules
) -> NDArray[np.bool_]:
    """Per row: a run of one answer over a whole sequence (and `min_same_answers`) at least."""
    longest = np.zeros(people, dtype=bool)
    if not len(votes):
        return longest
    broken = np.ones(len(votes), dtype=bool)
    broken[1:] = (row[1:] != row[:-1]) | (votes.key[1:] != votes.key[:-1])
    runs = np.flatnonzero(broken)
    lengths = np.diff(np.append(runs, len(votes)))
    longest[row[runs[lengths >= max(rules.sequence_size, rules.min_same_answers)]]] = True
    return longest


def _source_bursts(
    people: People,
    votes: VoteColumns,
    starts: NDArray[np.int64],
    ids: NDArray[np.int64],
    rules: TrustRules,
) -> NDArray[np.int64]:
    """Participants of a one-source burst (`burst_size` joins or more, each within
    `burst_minutes` of `burst_size - 1` others; overlapping windows merged) that votes as one."""
    window = rules.burst_minutes * 60_000
    found: list[int] = []
    for code in range(len(people.sources)):
        members = np.flatnonzero(people.source == code)
        members = members[np.argsort(people.joined[members], kind="stable")]
        joined = people.joined[members]
        # For each join, the first join within the window before it: a window ending at a join
        # that holds `burst_size` joins marks them all as inside a burst.
        first = np.searchsorted(joined, joined - window, side="left")
        ends = np.flatnonzero(np.arange(len(joined)) - first + 1 >= rules.burst_size)
        if not len(ends):
            continue
        marks = np.zeros(len(joined) + 1, dtype=np.int64)
        np.add.at(marks, first[ends], 1)
        np.add.at(marks, ends + 1, -1)
        inside = np.cumsum(marks[:-1]) > 0
        # Bursts: runs of joins inside, each within the window of the one before.
        step = np.ones(len(joined), dtype=bool)
        step[1:] = ~inside[:-1] | (np.diff(joined) > window)
        label = np.cumsum(step)
        for burst in np.unique(label[inside]):
            pids = people.participant[members[inside & (label == burst)]]
            found.extend(_voting_as_one(pids, votes, starts, ids, rules.burst_agreement))
    return np.array(sorted(found), dtype=np.int64)


def _voting_as_one(
    pids: NDArray[np.int64],
    votes: VoteColumns,
    starts: NDArray[np.int64],
    ids: NDArray[np.int64],
    agreement: float,
) -> list[int]:
    """The burst's members who vote with its majority, if the burst as a whole does: on the
    proposals two or more of them voted on, `agreement` of all their votes and of each one's."""
    if not len(ids):  # nobody has voted yet (a campaign's first joiners): nothing to compare
        return []
    at, voted = find(ids, pids)
    at = at[voted]
    if not len(at):
        return []
    # The members' votes in the burst's order (by join, each one's oldest first), gathered
    # without a Python object per vote: a steady stream of joiners is one long burst.
    lengths = starts[at + 1] - starts[at]
    offsets = np.cumsum(lengths) - lengths
    picked = (
        np.arange(int(lengths.sum())) - np.repeat(offsets, lengths) + np.repeat(starts[at], lengths)
    )
    member = np.repeat(np.arange(len(at)), lengths)
    proposal, key = votes.proposal[picked], votes.key[picked].astype(np.int64)
    # Each proposal's majority answer: the most votes, ties to the answer met first (as
    # Counter.most_common orders them).
    pairs, first, counts = np.unique(proposal * 3 + key, return_index=True, return_counts=True)
    of = pairs // 3
    order = np.lexsort((first, -counts, of))
    leads = order[np.r_[True, of[order][1:] != of[order][:-1]]]  # first of each proposal
    voted_on, per_proposal = np.unique(proposal, return_counts=True)
    shared_proposals = voted_on[per_proposal >= 2]
    majority_pair = pairs[leads]  # per proposal (sorted), its majority's pair code
    shared_leads = np.isin(of[leads], shared_proposals)
    total = int(per_proposal[per_proposal >= 2].sum())
    with_majority = int(counts[leads][shared_leads].sum())
    if total == 0 or with_majority < agreement * total:
        return []
    mine = np.isin(proposal, shared_proposals)
    agrees = mine & np.isin(proposal * 3 + key, majority_pair)
    counted = np.bincount(member[mine], minlength=len(at))
    agreeing = np.bincount(member[agrees], minlength=len(at))
    chosen = (counted > 0) & (agreeing >= agreement * counted)
    return [int(pid) for pid in ids[at[chosen]]]


def _one_proposal_crowds(
    people: People,
    votes: VoteColumns,
    starts: NDArray[np.int64],
    ids: NDArray[np.int64],
    rules: TrustRules,
) -> NDArray[np.int64]:
    """New identities that each gave one answer on one proposal outside a sequence, `crowd`
    or more alike."""
    if not len(votes):
        return np.zeros(0, dtype=np.int64)
    begin = starts[:-1]
    created = people.created[np.searchsorted(people.participant, ids)]
    new = votes.at[begin] - created <= rules.new_identity_hours * 3_600_000
    no_sequence = np.add.reduceat(votes.in_sequence.astype(np.int64), begin) == 0
    one = (
        np.minimum.reduceat(votes.proposal, begin) == np.maximum.reduceat(votes.proposal, begin)
    ) & (np.minimum.reduceat(votes.key, begin) == np.maximum.reduceat(votes.key, begin))
    chosen = np.flatnonzero(new & no_sequence & one)
    alike = votes.proposal[begin[chosen]] * 3 + votes.key[begin[chosen]]
    _, inverse, counts = np.unique(alike, return_inverse=True, return_counts=True)
    return np.sort(ids[chosen[counts[inverse] >= rules.crowd]])


def _pushed_links(
    votes: VoteColumns, row: NDArray[np.int64], ids: NDArray[np.int64], rules: TrustRules
) -> NDArray[np.int64]:
    """Participants who gave the same pushed answers through links on two or more proposals
    as at least `crowd - 1` others (see the module docstring)."""
    linked = ~votes.in_sequence
    if not linked.any():
        return np.zeros(0, dtype=np.int64)
    pair = votes.proposal * 3 + votes.key
    link_pairs, link_counts = np.unique(pair[linked], return_counts=True)
    seq_pairs, seq_counts = np.unique(pair[~linked], return_counts=True)
    links: dict[int, Counter[int]] = defaultdict(Counter)
    for code, n in zip(link_pairs.tolist(), link_counts.tolist(), strict=True):
        links[code // 3][code % 3] = n
    proposals = set(links)
    sequences: dict[int, Counter[int]] = defaultdict(Counter)
    for code, n in zip(seq_pairs.tolist(), seq_counts.tolist(), strict=True):
        if code // 3 in proposals:
            sequences[code // 3][code % 3] = n
    pushed_pairs = [
        proposal * 3 + key
        for proposal, tally in links.items()
        for key in tally
        if pushed(tally[key], sum(tally.values()), sequences[proposal], key, rules)
    ]
    if not pushed_pairs:
        return np.zeros(0, dtype=np.int64)
    hit = linked & np.isin(pair, pushed_pairs)
    rows = row[hit]
    many = np.flatnonzero(np.bincount(rows, minlength=len(ids)) >= 2)
    mine: dict[int, set[int]] = defaultdict(set)
    keep = np.isin(rows, many)
    for r, code in zip(rows[keep].tolist(), pair[hit][keep].tolist(), strict=True):
        mine[r].add(code)
    alike: dict[frozenset[int], list[int]] = defaultdict(list)
    for r, codes in mine.items():
        alike[frozenset(codes)].append(int(ids[r]))
    return np.array(
        sorted(pid for crowd in alike.values() if len(crowd) >= rules.crowd for pid in crowd),
        dtype=np.int64,
    )


def pushed(hits: int, links: int, sequence: Mapping[K, int], key: K, rules: TrustRules) -> bool:
    """Whether `hits` of `links` link votes for `key` are far more than the sequences give it
    (`sequence`: the sequences' votes by answer): a two-proportion z-test (pooled), with the
    gap between the shares large as well."""
    seen = sum(sequence.values())
    if links < rules.crowd or seen == 0:
        return False
    here = sequence.get(key, 0)
    link_share, sequence_share = hits / links, here / seen
    pooled = (hits + here) / (links + seen)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / links + 1 / seen))
    gap = link_share - sequence_share
    return gap >= rules.push_gap and (spread == 0 or gap / spread >= rules.push_z)


@dataclass(frozen=True)
class TrustSummary:
    """What the results say about trust: counts only, never who."""

    exclude_untrusted: bool
    participants: int
    untrusted: int
    reasons: Mapping[str, int]
    untrusted_votes: int
    left_out_votes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "exclude_untrusted": self.exclude_untrusted,
            "participants": self.participants,
            "untrusted": self.untrusted,
            "reasons": dict(self.reasons),
            "untrusted_votes": self.untrusted_votes,
            "left_out_votes": self.left_out_votes,
        }


def rules_of(consultation: Consultation) -> TrustRules:
    """The rules with the consultation's own thresholds (its sequence size, its flags')."""
    settings = settings_of(consultation)
    return TrustRules(
        sequence_size=settings.sequence_size,
        burst_minutes=settings.flags.minutes,
        burst_size=settings.flags.source,
    )


@dataclass(frozen=True)
class Trust:
    """A consultation's trust: the summary the results show, who is untrusted (for the
    weighting to leave out), and per proposal id the counts to take out of its scores:
    `left_out` (empty unless the consultation leaves untrusted votes out) and `theirs`, the
    untrusted participants' counts either way (the dashboard's trust filter)."""

    summary: TrustSummary
    untrusted: frozenset[int]
    left_out: Mapping[int, ProposalCounts]
    theirs: Mapping[int, ProposalCounts] = field(default_factory=dict)  # left out or not
    verdicts: Mapping[int, Verdict] = field(default_factory=dict)  # the untrusted ones


async def consultation_trust(
    session: AsyncSession, consultation: Consultation, *, votes: VoteColumns | None = None
) -> Trust:
    """Assess every participant of `consultation` from their votes (an organiser's report:
    reads all of the consultation's votes, never on the participants' hot path; `votes` if
    the caller has read them already, `core.results.votes`)."""
    assert consultation.id is not None
    people = await read_people(session, consultation.id)
    if votes is None:
        votes = await read_votes(session, consultation.id)
    votes = votes.where(np.isin(votes.participant, people.participant))
    lengths = await raw_rows(
        session,
        "SELECT id, length(text) FROM proposal WHERE consultation_id = ? ORDER BY id",
        "SELECT id, length(text) FROM proposal WHERE consultation_id = $1 ORDER BY id",
        (consultation.id,),
    )
    proposal_ids = np.array([i for i, _ in lengths], dtype=np.int64)
    chars = np.array([n for _, n in lengths], dtype=np.float64)
    card_chars = chars[np.searchsorted(proposal_ids, votes.proposal)] if len(votes) else chars[:0]
    reasons = assess_columns(people, votes, card_chars, rules_of(consultation))
    untrusted = frozenset(reasons)
    exclude = settings_of(consultation).exclude_untrusted
    theirs = votes.where(np.isin(votes.participant, list(untrusted)))
    theirs_counts: dict[int, ProposalCounts] = {}
    if untrusted:
        sequence: dict[int, Counter[str]] = defaultdict(Counter)
        other: dict[int, Counter[str]] = defaultdict(Counter)
        for proposal, key, counted in zip(
            theirs.proposal.tolist(), theirs.key.tolist(), theirs.in_sequence.tolist(), strict=True
        ):
            (sequence if counted else other)[proposal][KEYS[key]] += 1
        found = await session.exec(
            select(
                Qualification.participant_id,
                Qualification.proposal_id,
                Qualification.key,
                Qualification.trusted,
            )
            .join(Proposal, col(Proposal.id) == col(Qualification.proposal_id))
            .where(Proposal.consultation_id == consultation.id)
        )
        for pid, proposal, key, counted in found:
            if pid in untrusted:
                (sequence if counted else other)[proposal][key] += 1
        theirs_counts = {
            proposal: ProposalCounts(dict(sequence[proposal]), dict(other[proposal]))
            for proposal in set(sequence) | set(other)
        }
    counted = Counter(reason.value for why in reasons.values() for reason in why)
    summary = TrustSummary(
        exclude_untrusted=exclude,
        participants=len(people.participant),
        untrusted=len(untrusted),
        reasons={reason.value: counted.get(reason.value, 0) for reason in Reason},
        untrusted_votes=len(theirs),
        left_out_votes=len(theirs) if exclude else 0,
    )
    verdicts = {pid: Verdict(pid, Level.UNTRUSTED, why) for pid, why in reasons.items()}
    return Trust(summary, untrusted, theirs_counts if exclude else {}, theirs_counts, verdicts)


async def record_trust(
    session: AsyncSession,
    consultation: Consultation,
    now: datetime,
    *,
    votes: VoteColumns | None = None,
) -> Trust:
    """Assess the consultation's participants and store who is untrusted and why
    (`ParticipantTrust`), in place of the last assessment; in the caller's transaction."""
    trust = await consultation_trust(session, consultation, votes=votes)
    await store_trust(session, consultation, trust, now)
    return trust


async def store_trust(
    session: AsyncSession, consultation: Consultation, trust: Trust, now: datetime
) -> None:
    """Store `trust`'s untrusted participants and why (`ParticipantTrust`) in place of the
    last assessment; in the caller's transaction."""
    assert consultation.id is not None
    await session.exec(
        delete(ParticipantTrust).where(col(ParticipantTrust.consultation_id) == consultation.id)
    )
    rows = [
        {
            "consultation_id": consultation.id,
            "participant_id": pid,
            "reasons": " ".join(reason.value for reason in verdict.reasons),
            "assessed_at": now,
        }
        for pid, verdict in trust.verdicts.items()
    ]
    if rows:
        await session.exec(insert(ParticipantTrust), params=rows)


async def stored_untrusted(session: AsyncSession, consultation_id: int) -> dict[int, Verdict]:
    """The untrusted participants of the last stored assessment, with their reasons."""
    found = await session.exec(
        select(ParticipantTrust).where(ParticipantTrust.consultation_id == consultation_id)
    )
    return {
        row.participant_id: Verdict(
            row.participant_id,
            Level.UNTRUSTED,
            tuple(Reason(reason) for reason in row.reasons.split()),
        )
        for row in found
    }


async def read_people(session: AsyncSession, consultation_id: int) -> People:
    """The consultation's participants as `People` columns (plain rows: a consultation may
    have millions of participants)."""
    query = (
        "SELECT pa.participant_id, coalesce(pa.source, ''), {joined}, {created} "
        "FROM participation pa JOIN participant p ON p.id = pa.participant_id "
        "WHERE pa.consultation_id = {mark} ORDER BY pa.participant_id"
    )
    rows = await raw_rows(
        session,
        query.format(
            joined=MS_SQLITE.format("pa.created_at"),
            created=MS_SQLITE.format("p.created_at"),
            mark="?",
        ),
        query.format(
            joined=MS_POSTGRES.format("pa.created_at"),
            created=MS_POSTGRES.format("p.created_at"),
            mark="$1",
        ),
        (consultation_id,),
    )
    sources = tuple(sorted({row[1] for row in rows if row[1]}))
    index = {name: i for i, name in enumerate(sources)}
    return People(
        np.array([row[0] for row in rows], dtype=np.int64),
        np.array([index.get(row[1], -1) for row in rows], dtype=np.int64),
        sources,
        np.array([row[2] for row in rows], dtype=np.int64),
        np.array([row[3] for row in rows], dtype=np.int64),
    )
