"""`consult bench brigade`: how much a brigade moves the top 10, with and without the trust
filter (`core.results.trust`).

An honest crowd (`bench.populations.synthetic`: three opinion groups, true rates per proposal
and group) joins over three days from five recruitment sources, plus a newsletter that brings
a wave of them within twenty minutes (a burst of honest people, which the rules must not
mistake for a brigade). Each honest participant answers one sequence of 12 cards drawn at
random, as their group would; the time they take on a card is the card's length read at a
speed drawn per person (log-normal, median 20 characters a second, most between 11 and 36)
plus a pause to tap (log-normal, median 2 s). One in five also answers 1 to 3 of the six most
agreed-upon proposals through links the organiser shared (outside a sequence, as they think).
These timings, links and uniform cards are the bench's assumptions, not measurements.

A brigade of N accounts (300 by default) then pushes `targets` chosen proposals (ranked 30th
to 35th by the true agree rate: plausible, but not in the top 10), in one of three ways:

- `burst`: recruited through one source (a forum post) within 30 minutes, each account opens
  the targets' links and agrees with every one, at a human pace;
- `sockpuppets`: new identities spread over two days, no source, each agreeing with one
  target through its link and leaving;
- `patient`: accounts spread over three days and over the honest sources, each answering a
  whole sequence as an honest person would before agreeing with the targets through their
  links (only the links give them away: their answers there are not the sequences').

The ranking is the report's: the top score of the smoothed rates (`core.scoring.score`),
votes outside a sequence weighted 0.5. Figures: targets in the top 10, the top 10's overlap
with the honest crowd's own, brigade accounts caught, honest participants flagged.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.populations import Population, synthetic
from core.results.trust import Behaviour, Card, Level, TrustRules, assess
from core.scoring import DEFAULT_OTHER_WEIGHT, ProposalCounts, ZoneThresholds, score

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SEQUENCE = 12
SOURCES = ("poster", "ad", "school", "partner", "newsletter")
STRATEGIES = ("burst", "sockpuppets", "patient")
TOP = 10
FIRST_TARGET = 30  # targets are ranked from here by the true agree rate
SHARED = 6  # the organiser shares the most agreed-upon proposals by link...
LINK_FOLLOWERS = 0.2  # ... and this share of honest participants answer 1 to 3 of them


@dataclass(frozen=True)
class Crowd:
    behaviours: list[Behaviour]
    in_sequence: dict[tuple[int, int], bool]  # (participant, proposal) -> cast in a sequence


def _answer(population: Population, group: int, proposal: int, rng: random.Random) -> str:
    draw = rng.random()
    agree = population.agree[proposal][group]
    if draw < agree:
        return "agree"
    return "disagree" if draw < agree + population.disagree[proposal][group] else "neutral"


def _sequence(
    population: Population, group: int, joined: datetime, rng: random.Random
) -> list[Card]:
    """One honest sequence: 12 cards at random, answered as the group would, at a person's pace."""
    speed = math.exp(rng.gauss(math.log(20), 0.3))  # characters a second, this person's
    at = joined + timedelta(seconds=rng.uniform(5, 60))
    cards = []
    for proposal in rng.sample(range(len(population.texts)), SEQUENCE):
        chars = len(population.texts[proposal])
        cards.append(Card(proposal, _answer(population, group, proposal, rng), at, chars))
        at += timedelta(seconds=chars / speed + math.exp(rng.gauss(math.log(2), 0.4)))
    return cards


def honest_crowd(population: Population, participants: int, seed: int) -> Crowd:
    rng = random.Random(seed)
    behaviours = []
    agree = [population.population_rate(population.agree, p) for p in range(len(population.texts))]
    shared = sorted(range(len(agree)), key=lambda p: -agree[p])[:SHARED]
    groups = rng.choices(range(len(population.shares)), weights=population.shares, k=participants)
    wave = participants // 10  # the newsletter's wave, within twenty minutes
    for pid, group in enumerate(groups):
        if pid < wave:
            source, joined = "newsletter", START + timedelta(minutes=rng.uniform(0, 20))
        else:
            source = rng.choice(SOURCES)
            joined = START + timedelta(minutes=rng.uniform(0, 3 * 24 * 60))
        cards = _sequence(population, group, joined, rng)
        if rng.random() < LINK_FOLLOWERS:  # they also answer proposals shared by link
            at = cards[-1].at
            seen = {c.proposal_id for c in cards}
            for proposal in rng.sample(shared, rng.randint(1, 3)):
                if proposal not in seen:
                    at += timedelta(seconds=rng.uniform(30, 600))
                    key = _answer(population, group, proposal, rng)
                    cards.append(Card(proposal, key, at, len(population.texts[proposal]), False))
        created = joined - timedelta(days=rng.uniform(0, 60))
        behaviours.append(Behaviour(pid, source, joined, created, tuple(cards)))
    in_sequence = {
        (b.participant_id, c.proposal_id): c.in_sequence for b in behaviours for c in b.cards
    }
    return Crowd(behaviours, in_sequence)


def brigade(
    population: Population,
    strategy: str,
    accounts: int,
    targets: list[int],
    first_id: int,
    seed: int,
) -> Crowd:
    rng = random.Random(seed)
    behaviours = []
    in_sequence: dict[tuple[int, int], bool] = {}
    for i in range(accounts):
        pid = first_id + i
        cards: list[Card] = []
        if strategy == "burst":
            source: str | None = "forum"
            joined = START + timedelta(days=1, minutes=rng.uniform(0, 30))
            created = joined
            chosen = targets
        elif strategy == "sockpuppets":
            source, created = None, START + timedelta(minutes=rng.uniform(0, 2 * 24 * 60))
            joined, chosen = created, [targets[i % len(targets)]]
        else:  # patient
            source = rng.choice(SOURCES[:-1])
            joined = START + timedelta(minutes=rng.uniform(0, 3 * 24 * 60))
            created = joined - timedelta(days=rng.uniform(1, 60))
            group = rng.choices(range(len(population.shares)), weights=population.shares)[0]
            honest = [
                c for c in _sequence(population, group, joined, rng) if c.proposal_id not in targets
            ]
            cards.extend(honest)
            in_sequence.update({(pid, c.proposal_id): True for c in honest})
            chosen = targets
        at = (cards[-1].at if cards else joined) + timedelta(seconds=rng.uniform(20, 120))
        for proposal in chosen:
            cards.append(Card(proposal, "agree", at, len(population.texts[proposal]), False))
            in_sequence[pid, proposal] = False
            at += timedelta(seconds=rng.uniform(6, 20))
        behaviours.append(Behaviour(pid, source, joined, created, tuple(cards)))
    return Crowd(behaviours, in_sequence)


def top_ten(behaviours: list[Behaviour], proposals: int, left_out: set[int]) -> list[int]:
    """The proposals with the 10 best top scores, as the report ranks them."""
    sequence = [Counter[str]() for _ in range(proposals)]
    other = [Counter[str]() for _ in range(proposals)]
    for behaviour in behaviours:
        if behaviour.participant_id in left_out:
            continue
        for card in behaviour.cards:
            (sequence if card.in_sequence else other)[card.proposal_id][card.key] += 1
    limits = ZoneThresholds()
    tops = [
        score(
            ProposalCounts(dict(sequence[p]), dict(other[p])),
            other_weight=DEFAULT_OTHER_WEIGHT,
            limits=limits,
        ).top.value
        for p in range(proposals)
    ]
    return sorted(range(proposals), key=lambda p: (-tops[p], p))[:TOP]


def run_brigade(
    participants: int = 3000,
    accounts: int = 300,
    targets: int = 5,
    proposals: int = 120,
    seed: int = 1,
    strategies: tuple[str, ...] = STRATEGIES,
) -> dict[str, Any]:
    """Every strategy against the same honest crowd; the figures as a JSON-ready dict."""
    population = synthetic(seed, proposals)
    agree = [population.population_rate(population.agree, p) for p in range(proposals)]
    ranked = sorted(range(proposals), key=lambda p: -agree[p])
    chosen = ranked[FIRST_TARGET : FIRST_TARGET + targets]
    honest = honest_crowd(population, participants, seed)
    rules = TrustRules(sequence_size=SEQUENCE)
    baseline = top_ten(honest.behaviours, proposals, set())
    report: dict[str, Any] = {
        "participants": participants,
        "accounts": accounts,
        "targets": len(chosen),
        "proposals": proposals,
        "seed": seed,
        "honest_top10_true_overlap": len(set(baseline) & set(ranked[:TOP])),
        "strategies": [],
    }
    for strategy in strategies:
        started = time.perf_counter()
        pushed = brigade(population, strategy, accounts, chosen, participants, seed + 1)
        everyone = honest.behaviours + pushed.behaviours
        verdicts = assess(everyone, rules)
        untrusted = {p for p, v in verdicts.items() if v.level is Level.UNTRUSTED}
        brigaders = {b.participant_id for b in pushed.behaviours}
        raw = top_ten(everyone, proposals, set())
        filtered = top_ten(everyone, proposals, untrusted)
        reasons = Counter(r.value for p in untrusted for r in verdicts[p].reasons)
        report["strategies"].append(
            {
                "strategy": strategy,
                "targets_in_top10_without_filter": len(set(raw) & set(chosen)),
                "targets_in_top10_with_filter": len(set(filtered) & set(chosen)),
                "top10_overlap_without_filter": len(set(raw) & set(baseline)),
                "top10_overlap_with_filter": len(set(filtered) & set(baseline)),
                "brigade_caught": len(untrusted & brigaders),
                "honest_flagged": len(untrusted - brigaders),
                "reasons": dict(sorted(reasons.items())),
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
    return report


def table(report: dict[str, Any]) -> str:
    """The figures as a readable table."""
    lines = [
        f"brigade bench: {report['participants']} honest participants, {report['proposals']} "
        f"proposals, {report['accounts']} brigade accounts pushing {report['targets']} targets "
        f"(seed {report['seed']}); honest top 10 vs truth: "
        f"{report['honest_top10_true_overlap']}/10",
        "",
        f"{'strategy':<12} {'targets in top 10':>19} {'overlap with honest top 10':>27} "
        f"{'caught':>8} {'honest flagged':>15}",
        f"{'':<12} {'without / with':>19} {'without / with':>27}",
    ]
    for row in report["strategies"]:
        targets = (
            f"{row['targets_in_top10_without_filter']} / {row['targets_in_top10_with_filter']}"
        )
        overlap = f"{row['top10_overlap_without_filter']} / {row['top10_overlap_with_filter']}"
        lines.append(
            f"{row['strategy']:<12} {targets:>19} {overlap:>27} "
            f"{row['brigade_caught']:>4}/{report['accounts']:<3} {row['honest_flagged']:>15}"
        )
    return "\n".join(lines)
