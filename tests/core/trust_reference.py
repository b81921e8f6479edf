"""The trust rules written card by card, as `core.results.trust`'s docstring states them: the
reference its array version (`assess_columns`, which reads ten million votes in seconds) is
checked against on random populations (tests/core/test_trust.py)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta
from itertools import pairwise

from core.results.trust import (
    Behaviour,
    Card,
    Level,
    Reason,
    TrustRules,
    Verdict,
    pushed,
    reading_seconds,
)


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
    pushed_pairs = {
        (proposal, key)
        for proposal, tally in linked.items()
        for key in tally
        if pushed(tally[key], sum(tally.values()), sequenced[proposal], key, rules)
    }
    alike: dict[frozenset[tuple[int, str]], list[int]] = defaultdict(list)
    for behaviour in behaviours:
        mine = {(c.proposal_id, c.key) for c in behaviour.cards if not c.in_sequence}
        if len(mine & pushed_pairs) >= 2:
            alike[frozenset(mine & pushed_pairs)].append(behaviour.participant_id)
    return {pid for crowd in alike.values() if len(crowd) >= rules.crowd for pid in crowd}


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
