"""Representativeness: weighting participants to a population's declared margins.

A consultation may declare, for some profile questions, the share of each answer in the
population it speaks for (`settings.population`, e.g. age brackets and regions). Participants
who answered every one of those questions are weighted by raking (iterative proportional
fitting, Deming and Stephan 1940): each question's margin is matched in turn, round after round,
until all of them hold. Weights above `settings.weighting.trim` times the mean are cut to that
cap and the result is raked again, a few times, so that a handful of people from a rare cell do
not carry the results (the "trim and rake" practice of survey weighting, e.g. the American
National Election Studies' weights, DeBell and Krosnick 2009).

A weighted rate then comes with an interval that uses Kish's effective sample size
`n_eff = (sum w)^2 / sum w^2` (Kish 1965, "Survey Sampling", 11.7) in place of the number of
votes, through the same smoothed rate and interval as the unweighted figures
(`core.scoring.smoothed`), so that the two can be read side by side. The design effect of the
weighting is `n / n_eff` (Kish's `1 + CV^2` of the weights).

Participants who left one of the weighting questions unanswered ("" or absent), or gave an answer
the margins give no share of the population (an option added later, a share of 0), cannot be
placed in a cell: they get no weight, are left out of the weighted figures, and are counted.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import settings_of
from core.models import Consultation, Proposal, ProposalStatus
from core.report import idea_refs
from core.results.votes import KEYS, VoteColumns, answer_columns, find, raw_rows, read_votes
from core.scoring import Estimate, smoothed

Margins = Mapping[str, Mapping[str, float]]  # question id -> option id -> share of the population
MAX_ITERATIONS = 200
TOLERANCE = 1e-6  # the largest gap left between a weighted margin and its target share
TRIM_ROUNDS = 20
CAP_SLACK = 1e-3  # a weight this little above the cap, after the last raking, is within it

Weights = npt.NDArray[np.float64]


class UnreachableMargin(ValueError):
    """A declared share cannot be matched: nobody gave that answer, so no weight can make them
    count; `question` and `option` name the empty cell."""

    def __init__(self, question: str, option: str, share: float) -> None:
        super().__init__(
            f"population.{question}.{option}: the population's share is {share:g} but no "
            "participant gave this answer, so no weight can reach it (merge it with another "
            "option, or drop it and share its part among the others)"
        )
        self.question = question
        self.option = option


@dataclass(frozen=True)
class Raking:
    """Weights for the participants placed in a cell of every weighting question (mean 1), in
    the order given; `unplaced` counts the others (no weight). `converged` says the margins hold
    within TOLERANCE; `trimmed` counts the weights cut at the cap over all rounds."""

    weights: Weights
    unplaced: int
    iterations: int
    converged: bool
    trimmed: int
    cap: float | None
    within_cap: bool

    @property
    def effective_size(self) -> float:
        return effective_size(self.weights)

    @property
    def design_effect(self) -> float:
        return design_effect(self.weights)


def effective_size(weights: Sequence[float] | Weights) -> float:
    """Kish's effective sample size `(sum w)^2 / sum w^2`; 0 for no (or only zero) weights."""
    w = np.asarray(weights, dtype=np.float64)
    squares = float(np.dot(w, w))
    return float(w.sum()) ** 2 / squares if squares > 0 else 0.0


def design_effect(weights: Sequence[float] | Weights) -> float:
    """Kish's design effect of weighting, `n / n_eff` (1 when every weight is equal)."""
    w = np.asarray(weights, dtype=np.float64)
    n_eff = effective_size(w)
    return len(w) / n_eff if n_eff > 0 else 1.0


def weighted_rate(hits: Sequence[float] | Weights, weights: Sequence[float] | Weights) -> Estimate:
    """The weighted share of `hits` (1 where the voter chose the key, else 0) among voters,
    as `core.scoring.smoothed` with Kish's n_eff for the number of votes."""
    w = np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    if total <= 0:
        return smoothed(0, 0)
    share = float(np.dot(np.asarray(hits, dtype=np.float64), w)) / total
    n_eff = effective_size(w)
    return smoothed(share * n_eff, n_eff)


def rake(
    profiles: Sequence[Mapping[str, str]],
    population: Margins,
    *,
    trim: float | None = None,
    tolerance: float = TOLERANCE,
) -> tuple[Raking, list[int]]:
    """Rake the participants with these `profiles` to `population`'s margins.

    Returns the raking and, for each weight, the index in `profiles` it belongs to (those
    placed in a cell of every weighting question). `trim` caps a weight at `trim` times the
    mean, then the weights are raked again (up to TRIM_ROUNDS times). Raises
    UnreachableMargin for a share above zero that nobody's answer matches, once somebody can
    be placed (with nobody yet, as when a consultation opens, there is nothing to weight).
    """
    questions = list(population)
    shared = {q: {o for o, share in population[q].items() if share > 0} for q in questions}
    placed = [i for i, p in enumerate(profiles) if all(p.get(q) in shared[q] for q in questions)]
    unplaced = len(profiles) - len(placed)
    weights = np.ones(len(placed), dtype=np.float64)
    if not placed or not questions:
        return Raking(weights, unplaced, 0, True, 0, trim, True), placed
    cells = {q: np.array([profiles[i][q] for i in placed], dtype=object) for q in questions}
    targets: list[tuple[npt.NDArray[np.bool_], float]] = []
    for question in questions:
        for option in sorted(shared[question]):
            members = cells[question] == option
            share = population[question][option]
            if not members.any():
                raise UnreachableMargin(question, option, share)
            targets.append((members, share))

    iterations, converged = _ipf(weights, targets, tolerance)
    cut = np.zeros(len(weights), dtype=np.bool_)
    if trim is not None:
        for _ in range(TRIM_ROUNDS):
            over = weights > trim * (1 + CAP_SLACK)  # the mean weight is 1
            if not over.any():
                break
            cut |= over
            weights[over] = trim
            more, converged = _ipf(weights, targets, tolerance)
            iterations += more
    within = trim is None or bool(weights.max() <= trim * (1 + CAP_SLACK))
    trimmed = int(cut.sum())
    return Raking(weights, unplaced, iterations, converged, trimmed, trim, within), placed


def _ipf(
    weights: Weights,
    targets: Iterable[tuple[npt.NDArray[np.bool_], float]],
    tolerance: float,
) -> tuple[int, bool]:
    """Iterative proportional fitting in place; the mean weight stays 1 among the weighted."""
    targets = list(targets)
    n = float(len(weights))
    for iteration in range(1, MAX_ITERATIONS + 1):
        for members, share in targets:
            have = float(weights[members].sum())
            if have > 0:
                weights[members] *= share * n / have
        total = float(weights.sum())
        if total > 0:
            weights *= n / total
        gap = max(abs(float(weights[m].sum()) / n - share) for m, share in targets)
        if gap <= tolerance:
            return iteration, True
    return MAX_ITERATIONS, False


@dataclass(frozen=True)
class WeightedProposal:
    """One proposal's weighted rates beside its voters' number and effective number."""

    ref: str
    voters: int
    effective_voters: float
    rates: Mapping[str, Estimate]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "voters": self.voters,
            "effective_voters": round(self.effective_voters, 2),
            **{
                key: {
                    "value": round(e.value, 4),
                    "low": round(e.low, 4),
                    "high": round(e.high, 4),
                }
                for key, e in self.rates.items()
            },
        }


@dataclass(frozen=True)
class Weighting:
    """A consultation's weighted figures: who could be weighted, what the weights cost in
    precision (design effect, effective size), and each accepted proposal's weighted rates."""

    questions: tuple[str, ...]
    participants: int
    unplaced: int
    effective_size: float
    design_effect: float
    trim: float | None
    trimmed: int
    within_cap: bool
    converged: bool
    proposals: tuple[WeightedProposal, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "questions": list(self.questions),
            "participants": self.participants,
            "unplaced": self.unplaced,
            "effective_size": round(self.effective_size, 2),
            "design_effect": round(self.design_effect, 4),
            "trim": self.trim,
            "trimmed": self.trimmed,
            "within_cap": self.within_cap,
            "converged": self.converged,
            "proposals": [proposal.as_dict() for proposal in self.proposals],
        }


@dataclass(frozen=True)
class Ballot:
    """One vote as weighting reads it: whose, on which idea (its reported ref), which key, and
    how much it counts before the voter's weight (`other_vote_weight` outside a sequence)."""

    participant_id: int
    ref: str
    key: str
    weight: float


def weigh(
    profiles: Mapping[int, Mapping[str, str]],
    ballots: Iterable[Ballot],
    population: Margins,
    *,
    trim: float | None,
    keys: Sequence[str] = KEYS,
) -> Weighting:
    """Rake the participants (`profiles`: id -> answers) and weigh their `ballots`, per ref.

    Raises UnreachableMargin (see `rake`)."""
    listed = list(ballots)
    refs = sorted({ballot.ref for ballot in listed})
    index = {ref: i for i, ref in enumerate(refs)}
    code = {key: i for i, key in enumerate(keys)}
    return weigh_columns(
        profiles,
        np.array([b.participant_id for b in listed], dtype=np.int64),
        np.array([index[b.ref] for b in listed], dtype=np.int64),
        refs,
        np.array([code.get(b.key, -1) for b in listed], dtype=np.int64),
        np.array([b.weight for b in listed], dtype=np.float64),
        population,
        trim=trim,
        keys=keys,
    )


def weigh_columns(
    profiles: Mapping[int, Mapping[str, str]],
    participant: npt.NDArray[np.int64],
    ref: npt.NDArray[np.int64],
    refs: Sequence[str],
    key: npt.NDArray[np.int64],
    weight: npt.NDArray[np.float64],
    population: Margins,
    *,
    trim: float | None,
    keys: Sequence[str] = KEYS,
) -> Weighting:
    """`weigh` with the ballots as columns: vote i by `participant[i]` on `refs[ref[i]]`,
    `keys[key[i]]`, counting `weight[i]` before the voter's weight. Per ref sums by
    np.bincount: one pass over the votes, whatever their number."""
    ids = list(profiles)
    raking, placed = rake([profiles[i] for i in ids], population, trim=trim)
    placed_ids = np.array([ids[i] for i in placed], dtype=np.int64)
    order = np.argsort(placed_ids)
    placed_ids, voter_weight = placed_ids[order], raking.weights[order]
    at, weighted = find(placed_ids, participant)
    w = voter_weight[at[weighted]] * weight[weighted]
    where = ref[weighted]
    chose = key[weighted]
    count = len(refs)
    total = np.bincount(where, weights=w, minlength=count)
    squares = np.bincount(where, weights=w * w, minlength=count)
    voters = np.bincount(where, minlength=count)
    hits = {
        k: np.bincount(where, weights=w * (chose == i), minlength=count) for i, k in enumerate(keys)
    }
    proposals = []
    for i, name in enumerate(refs):
        if not voters[i]:
            continue
        n_eff = float(total[i]) ** 2 / float(squares[i]) if squares[i] > 0 else 0.0
        share = {k: float(hits[k][i] / total[i]) if total[i] > 0 else 0.0 for k in keys}
        rates = {k: smoothed(share[k] * n_eff, n_eff) for k in keys}
        proposals.append(WeightedProposal(name, int(voters[i]), n_eff, rates))
    return Weighting(
        questions=tuple(population),
        participants=len(ids),
        unplaced=raking.unplaced,
        effective_size=raking.effective_size,
        design_effect=raking.design_effect,
        trim=trim,
        trimmed=raking.trimmed,
        within_cap=raking.within_cap,
        converged=raking.converged,
        proposals=tuple(sorted(proposals, key=lambda p: p.ref)),
    )


async def weighted_figures(
    session: AsyncSession,
    consultation: Consultation,
    *,
    left_out: Collection[int] = (),
    votes: VoteColumns | None = None,
) -> Weighting | None:
    """The consultation's weighted figures, or None when it declares no population margins.

    Reads every vote on its accepted proposals (an organiser's report, never the participants'
    hot path; `votes` if the caller read them, `core.results.votes`); the participants in
    `left_out` (untrusted ones, when the consultation leaves them out) are neither raked nor
    counted. Raises UnreachableMargin.
    """
    assert consultation.id is not None
    settings = settings_of(consultation)
    if not settings.population:
        return None
    questions = list(settings.population)
    sqlite, postgres = answer_columns(len(questions), 2)
    query = (
        "SELECT participant_id, {answers} FROM participation "
        "WHERE consultation_id = {mark} AND consented_at IS NOT NULL"
    )
    rows = await raw_rows(
        session,
        query.format(answers=sqlite, mark="?1"),
        query.format(answers=postgres, mark="$1"),
        (consultation.id, *questions),
    )
    excluded = set(left_out)
    profiles = {
        row[0]: {q: a for q, a in zip(questions, row[1:], strict=True) if a is not None}
        for row in rows
        if row[0] not in excluded
    }
    accepted = await session.exec(
        select(Proposal).where(
            Proposal.consultation_id == consultation.id,
            Proposal.status == ProposalStatus.ACCEPTED,
        )
    )
    ideas = idea_refs(accepted, consultation.locales)
    refs = sorted(set(ideas.values()))
    if votes is None:
        votes = await read_votes(session, consultation.id)
    ref_of = np.full(max(ideas, default=0) + 1, -1, dtype=np.int64)
    index = {ref: i for i, ref in enumerate(refs)}
    for proposal_id, name in ideas.items():
        ref_of[proposal_id] = index[name]
    inside = votes.proposal < len(ref_of)
    on_ref = np.full(len(votes), -1, dtype=np.int64)
    on_ref[inside] = ref_of[votes.proposal[inside]]
    on = on_ref >= 0
    other = settings.other_vote_weight
    return weigh_columns(
        profiles,
        votes.participant[on],
        on_ref[on],
        refs,
        votes.key[on].astype(np.int64),
        np.where(votes.in_sequence[on], 1.0, other),
        settings.population,
        trim=settings.weighting.trim,
    )
