"""What an organiser reads of a consultation: totals, every accepted proposal's scores with
their 95% intervals, the consensus / controversy / rejection / limbo lists, and an optional
breakdown by the answers to one profile question.

Anonymity: nothing here names a person (no channel id, no participant id), and a breakdown never
shows a segment, or a proposal within a segment, backed by fewer than the consultation's
`min_segment_size` participants: such a cell says only "fewer than N", with no figure. Nor
does it let the hidden be found by subtraction: when the totals minus the shown groups would
leave fewer than N people, the smallest shown group is hidden too.

Figures come from the per-proposal counters (`core.scoring`); only the segment breakdown joins
votes with profiles, which is fine for an organiser's report and never done on the participants'
hot path. A seed proposal stored once per language (`p1.fr`, `p1.en`) is one idea: its
translations' counters are added up and it is reported as `p1`, in the requested language.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func
from sqlalchemy import select as select_columns
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import profile_questions_of, settings_of
from core.models import Consultation, Participation, Proposal, ProposalStatus, Vote, VoteKey
from core.results.votes import KEYS, VoteColumns, answer_columns, find, raw_rows
from core.scoring import Estimate, ProposalCounts, Zone, ZoneThresholds, counts_of, score


class UnknownSegment(ValueError):
    """`segment_by` is not a profile question of the consultation; `valid` lists those that are."""

    def __init__(self, question: str, valid: Sequence[str]) -> None:
        known = ", ".join(valid) or "none"
        super().__init__(f"{question!r} is not a profile question (valid: {known})")
        self.question = question
        self.valid = tuple(valid)


def _estimate(estimate: Estimate) -> dict[str, float]:
    return {
        "value": round(estimate.value, 4),
        "low": round(estimate.low, 4),
        "high": round(estimate.high, 4),
    }


@dataclass(frozen=True)
class ProposalResult:
    """One accepted proposal: smoothed rates and composite scores, each with its interval.

    `votes` counts every vote; `weighted_votes` is what the scores use (votes cast outside a
    sequence weighted by the consultation's `other_vote_weight`).
    """

    ref: str
    text: str
    votes: int
    weighted_votes: float
    agree: Estimate
    disagree: Estimate
    neutral: Estimate
    zone: Zone
    top: Estimate
    controversy: Estimate
    rejection: Estimate

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "text": self.text,
            "votes": self.votes,
            "weighted_votes": round(self.weighted_votes, 4),
            "agree": _estimate(self.agree),
            "disagree": _estimate(self.disagree),
            "neutral": _estimate(self.neutral),
            "zone": self.zone.value,
            "top": _estimate(self.top),
            "controversy": _estimate(self.controversy),
            "rejection": _estimate(self.rejection),
        }


@dataclass(frozen=True)
class SegmentShares:
    """Shares of a proposal's votes among one segment; None when too few voted to show them."""

    ref: str
    shares: Mapping[str, float] | None

    def as_dict(self) -> dict[str, Any]:
        if self.shares is None:
            return {"ref": self.ref, "suppressed": True}
        return {"ref": self.ref, **{k: round(v, 4) for k, v in self.shares.items()}}


@dataclass(frozen=True)
class Segment:
    """The participants who gave one answer. When they are fewer than the minimum, neither
    their number nor any share is kept: `participants` is None and `proposals` empty."""

    option: str
    label: str
    participants: int | None
    proposals: tuple[SegmentShares, ...]

    @property
    def suppressed(self) -> bool:
        return self.participants is None

    def as_dict(self, minimum: int) -> dict[str, Any]:
        head = {"option": self.option, "label": self.label}
        if self.participants is None:
            return {**head, "suppressed": True, "fewer_than": minimum}
        proposals = [shares.as_dict() for shares in self.proposals]
        return {**head, "participants": self.participants, "proposals": proposals}


@dataclass(frozen=True)
class Breakdown:
    question: str
    label: str
    min_segment_size: int
    segments: tuple[Segment, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "label": self.label,
            "min_segment_size": self.min_segment_size,
            "segments": [segment.as_dict(self.min_segment_size) for segment in self.segments],
        }


@dataclass(frozen=True)
class Report:
    """The organiser's view of one consultation (see the module docstring for what it hides)."""

    slug: str
    question: str
    locale: str
    generated_at: datetime
    participants: int
    votes: int
    proposals_by_status: Mapping[str, int]
    proposals: tuple[ProposalResult, ...]
    consensus: tuple[str, ...]
    controversies: tuple[str, ...]
    rejected: tuple[str, ...]
    limbo: tuple[str, ...]
    breakdown: Breakdown | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "question": self.question,
            "locale": self.locale,
            "generated_at": self.generated_at.isoformat(),
            "participants": self.participants,
            "votes": self.votes,
            "proposals_by_status": dict(self.proposals_by_status),
            "proposals": [proposal.as_dict() for proposal in self.proposals],
            "consensus": list(self.consensus),
            "controversies": list(self.controversies),
            "rejected": list(self.rejected),
            "limbo": list(self.limbo),
            "breakdown": None if self.breakdown is None else self.breakdown.as_dict(),
        }


async def consultation_slugs(session: AsyncSession) -> list[str]:
    """Every consultation's slug, sorted (to tell an organiser which ones exist)."""
    found = await session.exec(select(Consultation.slug).order_by(col(Consultation.slug)))
    return list(found)


def idea_of(proposal_id: int | None, ref: str | None, locales: Sequence[str]) -> str:
    """The idea a proposal is reported under: the seed ref shared by its translations ("p1"
    for "p1.fr"), else its own ref, else "#<id>" for a participant's proposal. The report,
    the opinion groups' matrix, a participant's placement and audiences all name ideas so."""
    if ref is None:
        return f"#{proposal_id}"
    stem, dot, lang = ref.rpartition(".")
    return stem if dot and lang in locales else ref


def idea_refs(proposals: Iterable[Proposal], locales: Sequence[str]) -> dict[int, str]:
    """Proposal id -> the ref the report shows it under (a seed's translations share one)."""
    return {p.id: idea_of(p.id, p.ref, locales) for p in proposals if p.id is not None}


def _text_in(rows: Sequence[Any], locale: str, default: str) -> str:
    """An idea's text in `locale`: its proposal in that language, else in the consultation's
    default one, else the first."""
    text = next((p.text for p in rows if p.locale == locale), None)
    text = text or next((p.text for p in rows if p.locale == default), None)
    return str(text or rows[0].text)


async def consultation_reports(
    session: AsyncSession,
    consultation: Consultation,
    *,
    now: datetime,
    left_out: Mapping[int, ProposalCounts] | None = None,
) -> dict[str, Report]:
    """The report in each of the consultation's languages, scored once: only the texts differ
    (a results snapshot stores them all, and scoring 30,000 proposals takes seconds)."""
    first = await consultation_report(
        session, consultation, locale=consultation.default_locale, now=now, left_out=left_out
    )
    connection = await session.connection()
    found = await connection.execute(
        select_columns(
            col(Proposal.id), col(Proposal.ref), col(Proposal.locale), col(Proposal.text)
        )
        .where(col(Proposal.consultation_id) == consultation.id)
        .order_by(col(Proposal.id))
    )
    ideas: dict[str, list[Any]] = defaultdict(list)
    for proposal in found:
        ideas[idea_of(proposal.id, proposal.ref, consultation.locales)].append(proposal)
    reports = {consultation.default_locale: first}
    for locale in consultation.locales:
        if locale == consultation.default_locale:
            continue
        proposals = tuple(
            replace(r, text=_text_in(ideas[r.ref], locale, consultation.default_locale))
            for r in first.proposals
        )
        reports[locale] = replace(
            first,
            question=consultation.question.get(locale, ""),
            locale=locale,
            proposals=proposals,
        )
    return reports


def _merged(parts: list[ProposalCounts]) -> ProposalCounts:
    sequence: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for part in parts:
        sequence.update(part.sequence)
        other.update(part.other)
    return ProposalCounts(dict(sequence), dict(other))


async def consultation_report(
    session: AsyncSession,
    consultation: Consultation,
    *,
    locale: str,
    segment_by: str | None = None,
    now: datetime,
    left_out: Mapping[int, ProposalCounts] | None = None,
    columns: VoteColumns | None = None,
) -> Report:
    """The report of `consultation`, texts in `locale` (the default locale if not offered).

    `left_out`: per proposal id, counts to take out of its counters before scoring (the votes
    of untrusted participants, `core.results.trust`); a proposal only they voted on is in no
    list, and the segment breakdown keeps every vote. `columns`: the consultation's votes as
    columns, if the caller read them (`core.results.votes`), for the breakdown.
    Raises UnknownSegment when `segment_by` is not one of its profile questions.
    """
    assert consultation.id is not None
    questions = {q.id: q for q in profile_questions_of(consultation)}
    if segment_by is not None and segment_by not in questions:
        raise UnknownSegment(segment_by, list(questions))
    if locale not in consultation.locales:
        locale = consultation.default_locale
    settings = settings_of(consultation)

    # The columns the report reads, not Proposal objects: a consultation may have tens of
    # thousands of proposals, and its results are computed every few minutes.
    connection = await session.connection()
    found = await connection.execute(
        select_columns(
            col(Proposal.id),
            col(Proposal.ref),
            col(Proposal.status),
            col(Proposal.locale),
            col(Proposal.text),
        )
        .where(col(Proposal.consultation_id) == consultation.id)
        .order_by(col(Proposal.id))
    )
    ideas: dict[str, list[Any]] = defaultdict(list)
    for proposal in found:
        ideas[idea_of(proposal.id, proposal.ref, consultation.locales)].append(proposal)
    counts = await counts_of(session, [p.id for rows in ideas.values() for p in rows if p.id])

    statuses: Counter[str] = Counter(rows[0].status for rows in ideas.values())
    results: list[ProposalResult] = []
    total_votes = 0
    zones = ZoneThresholds(**settings.zones.model_dump())
    only_left_out: set[str] = set()  # voted on, but only by participants left out
    for ref, rows in ideas.items():
        merged = _merged([counts[p.id] for p in rows if p.id is not None])
        votes = sum(merged.sequence.get(k, 0) + merged.other.get(k, 0) for k in VoteKey)
        if left_out:
            merged = _without(merged, [left_out[p.id] for p in rows if p.id and p.id in left_out])
            if not any(merged.sequence.values()) and not any(merged.other.values()):
                only_left_out.add(ref)
        total_votes += votes
        if rows[0].status != ProposalStatus.ACCEPTED:
            continue
        scores = score(merged, other_weight=settings.other_vote_weight, limits=zones)
        results.append(
            ProposalResult(
                ref=ref,
                text=_text_in(rows, locale, consultation.default_locale),
                votes=votes,
                weighted_votes=scores.votes,
                agree=scores.rates[VoteKey.AGREE],
                disagree=scores.rates[VoteKey.DISAGREE],
                neutral=scores.rates[VoteKey.NEUTRAL],
                zone=scores.zone,
                top=scores.top,
                controversy=scores.controversy,
                rejection=scores.rejection,
            )
        )

    listed = [r for r in results if r.ref not in only_left_out]
    participants = await _consenting(session, consultation.id)
    breakdown = None
    if segment_by is not None:
        accepted = {
            p.id: ref
            for ref, rows in ideas.items()
            if rows[0].status == ProposalStatus.ACCEPTED
            for p in rows
            if p.id is not None
        }
        breakdown = await _breakdown(
            session,
            consultation.id,
            questions[segment_by].id,
            questions[segment_by].label.get(locale, segment_by),
            [(o.id, o.label.get(locale, o.id)) for o in questions[segment_by].options],
            accepted,
            results,
            participants,
            settings.min_segment_size,
            columns,
        )

    return Report(
        slug=consultation.slug,
        question=consultation.question.get(locale, ""),
        locale=locale,
        generated_at=now,
        participants=participants,
        votes=total_votes,
        proposals_by_status=dict(sorted(statuses.items())),
        proposals=tuple(results),
        # Unvoted proposals sit in no list: their smoothed rates are the prior, not an opinion.
        consensus=_ranked(listed, Zone.CONSENSUS, lambda r: r.top.value),
        controversies=_ranked(listed, Zone.CONTROVERSY, lambda r: r.controversy.value),
        rejected=_ranked(listed, Zone.REJECTION, lambda r: r.rejection.value),
        limbo=_ranked(listed, Zone.LIMBO, lambda r: r.neutral.value),
        breakdown=breakdown,
    )


def _without(counts: ProposalCounts, parts: list[ProposalCounts]) -> ProposalCounts:
    taken = _merged(parts)
    sequence = Counter(counts.sequence)
    other = Counter(counts.other)
    sequence.subtract(taken.sequence)
    other.subtract(taken.other)
    return ProposalCounts(dict(sequence), dict(other))


def _ranked(
    results: list[ProposalResult], zone: Zone, key: Callable[[ProposalResult], float]
) -> tuple[str, ...]:
    chosen = [r for r in results if r.zone is zone and r.votes > 0]
    return tuple(r.ref for r in sorted(chosen, key=lambda r: (-key(r), -r.votes, r.ref)))


async def _consenting(session: AsyncSession, consultation_id: int) -> int:
    found = await session.exec(
        select(func.count())
        .select_from(Participation)
        .where(
            Participation.consultation_id == consultation_id,
            col(Participation.consented_at).is_not(None),
        )
    )
    return int(found.one())


async def _breakdown(
    session: AsyncSession,
    consultation_id: int,
    question: str,
    label: str,
    options: list[tuple[str, str]],
    idea_of: Mapping[int, str],
    results: list[ProposalResult],
    participants: int,
    minimum: int,
    votes: VoteColumns | None = None,
) -> Breakdown:
    """Per answer option, the vote shares of each accepted proposal among those who gave it.

    Small groups are hidden, and so are the smallest shown ones when the report's totals minus
    the shown groups would single out fewer than `minimum` people (complementary suppression).
    `votes`: the consultation's votes as columns, when the caller read them (a results
    snapshot): counted on arrays rather than by joining the votes to the participations.
    """
    answer = col(Participation.profile)[question].as_string()
    consenting = (
        col(Participation.consultation_id) == consultation_id,
        col(Participation.consented_at).is_not(None),
    )
    sizes_found = await session.exec(
        select(answer, func.count()).where(*consenting).group_by(answer)
    )
    sizes = {str(option): int(n) for option, n in sizes_found if option}

    cells: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    if idea_of and votes is not None:
        await _cells_of(session, consultation_id, question, idea_of, votes, cells)
    elif idea_of:
        votes_found = await session.exec(
            select(
                col(Vote.proposal_id),
                col(Vote.key),
                answer,
                func.count(func.distinct(col(Vote.participant_id))),
            )
            .join(Participation, col(Participation.participant_id) == col(Vote.participant_id))
            .where(*consenting, col(Vote.proposal_id).in_(list(idea_of)))
            .group_by(col(Vote.proposal_id), col(Vote.key), answer)
        )
        for proposal_id, key, option, n in votes_found:
            if option:
                cells[str(option), idea_of[proposal_id]][key] += int(n)

    shown = _shown({option: sizes.get(option, 0) for option, _ in options}, participants, minimum)
    voters = {
        result.ref: _shown(
            {o: sum(cells[o, result.ref][k] for k in VoteKey) for o in shown},
            result.votes,
            minimum,
        )
        for result in results
    }
    segments = []
    for option, option_label in options:
        if option not in shown:
            segments.append(Segment(option, option_label, None, ()))
            continue
        shares = tuple(
            SegmentShares(r.ref, _shares(cells[option, r.ref]) if option in voters[r.ref] else None)
            for r in results
        )
        segments.append(Segment(option, option_label, shown[option], shares))
    return Breakdown(question, label, minimum, tuple(segments))


async def _cells_of(
    session: AsyncSession,
    consultation_id: int,
    question: str,
    idea_of: Mapping[int, str],
    votes: VoteColumns,
    cells: dict[tuple[str, str], Counter[str]],
) -> None:
    """Add to `cells`, per (answer, idea), the consenting participants' votes by key."""
    sqlite, postgres = answer_columns(1, 2)
    query = (
        "SELECT participant_id, {answer} FROM participation "
        "WHERE consultation_id = {mark} AND consented_at IS NOT NULL ORDER BY participant_id"
    )
    rows = [
        (pid, str(answer))  # SQLite gives a JSON number back as a number
        for pid, answer in await raw_rows(
            session,
            query.format(answer=sqlite, mark="?1"),
            query.format(answer=postgres, mark="$1"),
            (consultation_id, question),
        )
        if answer
    ]
    answers = sorted({answer for _, answer in rows})
    code = {answer: i for i, answer in enumerate(answers)}
    people = np.array([pid for pid, _ in rows], dtype=np.int64)
    answer_of = np.array([code[answer] for _, answer in rows], dtype=np.int64)
    proposals = np.array(sorted(idea_of), dtype=np.int64)
    if not len(people) or not len(proposals):
        return
    at, counted = find(people, votes.participant)
    on, inside = find(proposals, votes.proposal)
    counted &= inside
    # One number per (answer, proposal, key), counted at once.
    cell = (answer_of[at[counted]] * len(proposals) + on[counted]) * len(KEYS) + votes.key[
        counted
    ].astype(np.int64)
    found, counts = np.unique(cell, return_counts=True)
    for number, n in zip(found.tolist(), counts.tolist(), strict=True):
        rest, key = divmod(number, len(KEYS))
        answer, proposal = divmod(rest, len(proposals))
        cells[answers[answer], idea_of[int(proposals[proposal])]][KEYS[key]] += n


def _shown(groups: dict[str, int], total: int, minimum: int) -> dict[str, int]:
    """The groups that may be shown: at least `minimum` people each, and leaving out of the
    `total` either nobody or at least `minimum` people (else the hidden rest is the total minus
    the shown groups: a small group revealed by subtraction). Hides the smallest first."""
    shown = {name: size for name, size in groups.items() if size >= minimum}
    while shown and 0 < total - sum(shown.values()) < minimum:
        del shown[min(shown, key=lambda name: (shown[name], name))]
    return shown


def _shares(tally: Counter[str]) -> dict[str, float]:
    voters = sum(tally[key] for key in VoteKey)
    return {key.value: tally[key] / voters for key in VoteKey}
