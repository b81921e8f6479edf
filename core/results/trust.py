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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Any

from sqlalchemy import func, insert
from sqlalchemy import select as select_columns
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import settings_of
from core.models import (
    Consultation,
    Participant,
    ParticipantTrust,
    Participation,
    Proposal,
    Qualification,
    Vote,
)
from core.scoring import ProposalCounts


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


def too_fast(cards: Sequence[Card], rules: TrustRules) -> bool:
    timed = fast = 0
    for before, card in pairwise(cards):
        gap = (card.at - before.at).total_seconds()
        if gap > rules.session_gap_seconds:
            continue
        timed += 1
        fast += gap < reading_seconds(card.chars, rules)
    return timed >= rules.min_timed and fast >= rules.fast_share * timed


def same_answer(cards: Sequence[Card], rules: TrustRules) -> bool:
    run = longest = 0
    for i, card in enumerate(cards):
        run = run + 1 if i and card.key == cards[i - 1].key else 1
        longest = max(longest, run)
    return longest >= max(rules.sequence_size, rules.min_same_answers)


def source_bursts(behaviours: Sequence[Behaviour], rules: TrustRules) -> set[int]:
    """Participants of a one-source burst that votes as one."""
    by_source: dict[str, list[Behaviour]] = defaultdict(list)
    for behaviour in behaviours:
        if behaviour.source:
            by_source[behaviour.source].append(behaviour)
    window = timedelta(minutes=rules.burst_minutes)
    found: set[int] = set()
    for joiners in by_source.values():
        joiners.sort(key=lambda b: b.joined_at)
        for burst in _bursts(joiners, window, rules.burst_size):
            found |= _voting_as_one(burst, rules.burst_agreement)
    return found


def _bursts(joiners: list[Behaviour], window: timedelta, size: int) -> list[list[Behaviour]]:
    """Runs of joiners where every one is within `window` of `size - 1` others (overlapping
    windows of `size` joins merged into one burst)."""
    inside = [False] * len(joiners)
    start, marked = 0, -1  # marked: the last joiner known inside, so each is marked once
    for end in range(len(joiners)):
        while joiners[end].joined_at - joiners[start].joined_at > window:
            start += 1
        if end - start + 1 >= size:
            for i in range(max(start, marked + 1), end + 1):
                inside[i] = True
            marked = end
    bursts: list[list[Behaviour]] = []
    for i, member in enumerate(joiners):
        if not inside[i]:
            continue
        if i and inside[i - 1] and member.joined_at - joiners[i - 1].joined_at <= window:
            bursts[-1].append(member)
        else:
            bursts.append([member])
    return bursts


def _voting_as_one(burst: list[Behaviour], agreement: float) -> set[int]:
    tallies: dict[int, Counter[str]] = defaultdict(Counter)
    for member in burst:
        for card in member.cards:
            tallies[card.proposal_id][card.key] += 1
    majority = {pid: tally.most_common(1)[0][0] for pid, tally in tallies.items()}
    shared = {pid for pid, tally in tallies.items() if sum(tally.values()) >= 2}
    votes = sum(sum(tallies[pid].values()) for pid in shared)
    with_majority = sum(tallies[pid][majority[pid]] for pid in shared)
    if votes == 0 or with_majority < agreement * votes:
        return set()
    found = set()
    for member in burst:
        mine = [card for card in member.cards if card.proposal_id in shared]
        agreeing = sum(card.key == majority[card.proposal_id] for card in mine)
        if mine and agreeing >= agreement * len(mine):
            found.add(member.participant_id)
    return found


def one_proposal_crowds(behaviours: Iterable[Behaviour], rules: TrustRules) -> set[int]:
    """New identities that each gave one answer on one proposal outside a sequence, `crowd`
    or more alike."""
    newcomer = timedelta(hours=rules.new_identity_hours)
    alike: dict[tuple[int, str], list[int]] = defaultdict(list)
    for behaviour in behaviours:
        cards = behaviour.cards
        if not cards or cards[0].at - behaviour.created_at > newcomer:
            continue
        if any(c.in_sequence for c in cards):
            continue
        if len({c.proposal_id for c in cards}) == 1 and len({c.key for c in cards}) == 1:
            alike[cards[0].proposal_id, cards[0].key].append(behaviour.participant_id)
    return {pid for crowd in alike.values() if len(crowd) >= rules.crowd for pid in crowd}


def pushed_links(behaviours: Sequence[Behaviour], rules: TrustRules) -> set[int]:
    """Participants who gave the same pushed answers through links on two or more proposals
    as at least `crowd - 1` others (see the module docstring)."""
    linked: dict[int, Counter[str]] = defaultdict(Counter)
    sequenced: dict[int, Counter[str]] = defaultdict(Counter)
    for behaviour in behaviours:
        for card in behaviour.cards:
            (sequenced if card.in_sequence else linked)[card.proposal_id][card.key] += 1
    pushed = {
        (proposal, key)
        for proposal, tally in linked.items()
        for key in tally
        if _pushed(tally[key], sum(tally.values()), sequenced[proposal], key, rules)
    }
    alike: dict[frozenset[tuple[int, str]], list[int]] = defaultdict(list)
    for behaviour in behaviours:
        mine = {(c.proposal_id, c.key) for c in behaviour.cards if not c.in_sequence}
        if len(mine & pushed) >= 2:
            alike[frozenset(mine & pushed)].append(behaviour.participant_id)
    return {pid for crowd in alike.values() if len(crowd) >= rules.crowd for pid in crowd}


def _pushed(hits: int, links: int, sequence: Counter[str], key: str, rules: TrustRules) -> bool:
    """Whether `hits` of `links` link votes for `key` are far more than the sequences give it:
    a two-proportion z-test (pooled), with the gap between the shares large as well."""
    seen = sum(sequence.values())
    if links < rules.crowd or seen == 0:
        return False
    link_share, sequence_share = hits / links, sequence[key] / seen
    pooled = (hits + sequence[key]) / (links + seen)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / links + 1 / seen))
    gap = link_share - sequence_share
    return gap >= rules.push_gap and (spread == 0 or gap / spread >= rules.push_z)


def assess(behaviours: Sequence[Behaviour], rules: TrustRules) -> dict[int, Verdict]:
    """Every participant's verdict (all rules, every reason that holds)."""
    reasons: dict[int, list[Reason]] = {b.participant_id: [] for b in behaviours}
    for behaviour in behaviours:
        if too_fast(behaviour.cards, rules):
            reasons[behaviour.participant_id].append(Reason.TOO_FAST)
        if same_answer(behaviour.cards, rules):
            reasons[behaviour.participant_id].append(Reason.SAME_ANSWER)
    for pid in source_bursts(behaviours, rules):
        reasons[pid].append(Reason.SOURCE_BURST)
    for pid in one_proposal_crowds(behaviours, rules):
        reasons[pid].append(Reason.ONE_PROPOSAL)
    for pid in pushed_links(behaviours, rules):
        reasons[pid].append(Reason.PUSHED_LINKS)
    return {
        pid: Verdict(pid, Level.UNTRUSTED if why else Level.TRUSTED, tuple(why))
        for pid, why in reasons.items()
    }


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


def summary_of(
    verdicts: Mapping[int, Verdict], votes_by: Mapping[int, int], exclude: bool
) -> TrustSummary:
    """Counts of `verdicts`; `votes_by` is each participant's number of votes."""
    untrusted = [v for v in verdicts.values() if v.level is Level.UNTRUSTED]
    reasons = Counter(reason.value for v in untrusted for reason in v.reasons)
    votes = sum(votes_by.get(v.participant_id, 0) for v in untrusted)
    return TrustSummary(
        exclude_untrusted=exclude,
        participants=len(verdicts),
        untrusted=len(untrusted),
        reasons={reason.value: reasons.get(reason.value, 0) for reason in Reason},
        untrusted_votes=votes,
        left_out_votes=votes if exclude else 0,
    )


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
    weighting to leave out), and per proposal id the counts to take out of its scores
    (empty unless the consultation leaves untrusted votes out)."""

    summary: TrustSummary
    untrusted: frozenset[int]
    left_out: Mapping[int, ProposalCounts]
    verdicts: Mapping[int, Verdict] = field(default_factory=dict)  # the untrusted ones


async def consultation_trust(session: AsyncSession, consultation: Consultation) -> Trust:
    """Assess every participant of `consultation` from their votes (an organiser's report:
    reads all of the consultation's votes, never on the participants' hot path)."""
    assert consultation.id is not None
    behaviours, in_sequence = await _behaviours(session, consultation.id)
    verdicts = assess(behaviours, rules_of(consultation))
    untrusted = frozenset(p for p, v in verdicts.items() if v.level is Level.UNTRUSTED)
    exclude = settings_of(consultation).exclude_untrusted
    votes_by = {b.participant_id: len(b.cards) for b in behaviours}
    left_out: dict[int, ProposalCounts] = {}
    if exclude and untrusted:
        sequence: dict[int, Counter[str]] = defaultdict(Counter)
        other: dict[int, Counter[str]] = defaultdict(Counter)
        for (pid, proposal, key), counted in in_sequence.items():
            if pid in untrusted:
                (sequence if counted else other)[proposal][key] += 1
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
        left_out = {
            proposal: ProposalCounts(dict(sequence[proposal]), dict(other[proposal]))
            for proposal in set(sequence) | set(other)
        }
    summary = summary_of(verdicts, votes_by, exclude)
    return Trust(summary, untrusted, left_out, {p: verdicts[p] for p in untrusted})


async def record_trust(session: AsyncSession, consultation: Consultation, now: datetime) -> Trust:
    """Assess the consultation's participants and store who is untrusted and why
    (`ParticipantTrust`), in place of the last assessment; in the caller's transaction."""
    assert consultation.id is not None
    trust = await consultation_trust(session, consultation)
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
    return trust


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


async def _behaviours(
    session: AsyncSession, consultation_id: int
) -> tuple[list[Behaviour], dict[tuple[int, int, str], bool]]:
    """Each participant's behaviour, and whether each vote (participant, proposal, key) was
    cast in a sequence (the counters' trust level, `Vote.trusted`)."""
    people = await session.exec(
        select(
            Participation.participant_id,
            Participation.source,
            Participation.created_at,
            Participant.created_at,
        )
        .join(Participant, col(Participant.id) == col(Participation.participant_id))
        .where(Participation.consultation_id == consultation_id)
    )
    known = {pid: (source, joined, created) for pid, source, joined, created in people}
    # Columns, not Vote objects: a consultation's votes are many, and the ORM's identity map
    # would cost more than the rules.
    connection = await session.connection()
    votes = await connection.execute(
        select_columns(
            col(Vote.participant_id),
            col(Vote.proposal_id),
            col(Vote.key),
            col(Vote.created_at),
            col(Vote.trusted),
            func.length(col(Proposal.text)),
        )
        .join(Proposal, col(Proposal.id) == col(Vote.proposal_id))
        .where(col(Proposal.consultation_id) == consultation_id)
        .order_by(col(Vote.participant_id), col(Vote.created_at), col(Vote.id))
    )
    cards: dict[int, list[Card]] = defaultdict(list)
    in_sequence: dict[tuple[int, int, str], bool] = {}
    for pid, proposal, key, at, counted, chars in votes:
        cards[pid].append(Card(proposal, key, at, int(chars), bool(counted)))
        in_sequence[pid, proposal, key] = bool(counted)
    behaviours = []
    for pid, (source, joined, created) in known.items():
        behaviours.append(Behaviour(pid, source, joined, created, tuple(cards.get(pid, ()))))
    return behaviours, in_sequence
