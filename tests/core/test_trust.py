"""Trust from behaviour: each rule on a crafted population (the troll is untrusted, the honest
people are not), and a stored consultation whose untrusted votes leave the scores."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Proposal, QualificationKey
from core.report import consultation_report
from core.results.trust import (
    Behaviour,
    Card,
    Level,
    Reason,
    TrustRules,
    Verdict,
    assess,
    consultation_trust,
    reading_seconds,
    record_trust,
    stored_untrusted,
)
from core.voting import record_qualification
from tests.conftest import Loader
from tests.core import trust_reference as reference
from tests.core.test_report import enrol, vote
from tests.support import Clock

Sessions = async_sessionmaker[AsyncSession]
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RULES = TrustRules(sequence_size=10, burst_minutes=10, burst_size=20, crowd=5)
KEYS = ("agree", "disagree", "neutral")


def honest(
    pid: int,
    rng: random.Random,
    *,
    cards: int = 12,
    source: str | None = None,
    joined: datetime = START,
    proposals: int = 40,
) -> Behaviour:
    """Someone who reads (8 to 30 s a card) and answers as they think."""
    at = joined + timedelta(seconds=rng.uniform(5, 60))
    chosen = rng.sample(range(proposals), cards)
    votes = []
    for proposal in chosen:
        votes.append(Card(proposal, rng.choice(KEYS), at, 60))
        at += timedelta(seconds=rng.uniform(8, 30))
    return Behaviour(pid, source, joined, joined - timedelta(days=3), tuple(votes))


def people(count: int, seed: int = 1, **kw: object) -> list[Behaviour]:
    rng = random.Random(seed)
    return [honest(pid, rng, **kw) for pid in range(count)]  # type: ignore[arg-type]


def untrusted(behaviours: list[Behaviour], rules: TrustRules = RULES) -> dict[int, set[Reason]]:
    return {
        pid: set(v.reasons)
        for pid, v in assess(behaviours, rules).items()
        if v.level is Level.UNTRUSTED
    }


def test_honest_people_are_trusted() -> None:
    assert untrusted(people(200)) == {}


def test_cards_answered_faster_than_anyone_reads_them() -> None:
    crowd = people(50)
    rng = random.Random(3)
    at = START
    cards = []
    for proposal in range(12):
        cards.append(Card(proposal, rng.choice(KEYS), at, 120))  # 3.4 s to read and tap
        at += timedelta(seconds=1.5)
    troll = Behaviour(999, None, START, START - timedelta(days=3), tuple(cards))
    assert reading_seconds(120, RULES) == 1.0 + 120 / 50
    assert untrusted([*crowd, troll]) == {999: {Reason.TOO_FAST}}
    # A quick reader on short cards is not a troll: 1.5 s is enough for 20 characters.
    short = Behaviour(
        998, None, START, START, tuple(Card(c.proposal_id, c.key, c.at, 20) for c in cards)
    )
    assert 998 not in untrusted([*crowd, short])
    # A few quick taps among cards read properly (a card seen before, a slip) are no pattern.
    at, mostly = START, []
    for proposal in range(12):
        mostly.append(Card(proposal, rng.choice(KEYS), at, 120))
        at += timedelta(seconds=1.5 if proposal % 4 == 0 else 12)
    assert 997 not in untrusted([*crowd, Behaviour(997, None, START, START, tuple(mostly))])
    # Each visit's first card is not timed: a troll coming back hours later is judged on the
    # cards within visits.
    visits = [
        Card(c.proposal_id, c.key, c.at + timedelta(hours=i // 4), 120) for i, c in enumerate(cards)
    ]
    assert untrusted([Behaviour(996, None, START, START, tuple(visits))]) == {
        996: {Reason.TOO_FAST}
    }


def test_the_same_answer_on_a_whole_sequence() -> None:
    crowd = people(50)
    rng = random.Random(5)
    at = START
    cards = []
    for proposal in range(10):
        cards.append(Card(proposal, "disagree", at, 60))
        at += timedelta(seconds=rng.uniform(8, 30))
    troll = Behaviour(999, None, START, START - timedelta(days=3), tuple(cards))
    assert untrusted([*crowd, troll]) == {999: {Reason.SAME_ANSWER}}
    # Nine alike in a row, one short of a sequence, is someone who disagrees with nine cards.
    mixed = (*cards[:9], Card(9, "agree", at, 60))
    assert untrusted([Behaviour(998, None, START, START, mixed)]) == {}


def test_a_burst_from_one_source_that_votes_as_one() -> None:
    rng = random.Random(7)
    crowd = people(60, seed=2)
    brigade = []
    for i in range(25):  # 25 people from "forum" within 5 minutes, all agreeing with 0 to 5
        joined = START + timedelta(seconds=12 * i)
        at = joined + timedelta(seconds=20)
        cards = []
        for proposal in range(6):
            cards.append(Card(proposal, "agree" if proposal < 5 else rng.choice(KEYS), at, 60))
            at += timedelta(seconds=rng.uniform(8, 30))
        brigade.append(Behaviour(1000 + i, "forum", joined, joined, tuple(cards)))
    found = untrusted([*crowd, *brigade])
    assert set(found) == {b.participant_id for b in brigade}
    assert all(reasons == {Reason.SOURCE_BURST} for reasons in found.values())
    # A newsletter bringing 25 honest people in 5 minutes is a burst that does not vote as one.
    wave = [
        honest(2000 + i, rng, source="newsletter", joined=START + timedelta(seconds=12 * i))
        for i in range(25)
    ]
    assert untrusted([*crowd, *wave]) == {}
    # The same brigade spread over five hours is no burst.
    slow = [
        Behaviour(
            b.participant_id, "forum", START + timedelta(minutes=12 * i), b.created_at, b.cards
        )
        for i, b in enumerate(brigade)
    ]
    assert untrusted([*crowd, *slow]) == {}


def test_new_identities_that_each_vote_once_on_one_proposal() -> None:
    crowd = people(50)
    sockpuppets = [
        Behaviour(
            1000 + i,
            None,
            START + timedelta(minutes=i),
            START + timedelta(minutes=i),
            (Card(7, "disagree", START + timedelta(minutes=i, seconds=30), 60, False),),
        )
        for i in range(6)
    ]
    found = untrusted([*crowd, *sockpuppets])
    assert found == {s.participant_id: {Reason.ONE_PROPOSAL} for s in sockpuppets}
    # One newcomer who votes once and leaves is just that; so are four.
    assert untrusted([*crowd, *sockpuppets[:4]]) == {}
    # Six newcomers who each answered the first card of their sequence alike and left: the
    # sequence chose that card for them, nobody aimed at it.
    dropped = [
        Behaviour(
            s.participant_id,
            None,
            s.joined_at,
            s.created_at,
            (replace(s.cards[0], in_sequence=True),),
        )
        for s in sockpuppets
    ]
    assert untrusted([*crowd, *dropped]) == {}
    # Old identities voting once are not new identities.
    old = [
        Behaviour(s.participant_id, None, s.joined_at, START - timedelta(days=30), s.cards)
        for s in sockpuppets
    ]
    assert untrusted([*crowd, *old]) == {}


def test_the_same_answers_through_links_that_push_proposals() -> None:
    rng = random.Random(11)
    crowd = people(200, seed=4)  # cards 0 to 39, answered a third each way in sequences
    # Honest people who follow shared links to 0 and 1 answer as the sequences do.
    followers = []
    for i in range(40):
        at = START + timedelta(hours=i)
        cards = (Card(0, rng.choice(KEYS), at, 60, False), Card(1, rng.choice(KEYS), at, 60, False))
        followers.append(Behaviour(3000 + i, "poster", at, at - timedelta(days=9), cards))
    # Patient accounts: a whole honest-looking sequence, then 'agree' on 5 and 6 by link.
    patient = []
    for i in range(10):
        honest_part = honest(4000 + i, rng, joined=START + timedelta(hours=3 * i), cards=8)
        at = honest_part.cards[-1].at + timedelta(minutes=2)
        kept = [c for c in honest_part.cards if c.proposal_id not in (5, 6)]
        links = [Card(5, "agree", at, 60, False), Card(6, "agree", at, 60, False)]
        cards = (*kept, *links)
        patient.append(Behaviour(4000 + i, "poster", honest_part.joined_at, START, cards))
    found = untrusted([*crowd, *followers, *patient])
    assert found == {b.participant_id: {Reason.PUSHED_LINKS} for b in patient}
    # Four such accounts are not yet a crowd.
    assert untrusted([*crowd, *followers, *patient[:4]]) == {}


async def test_untrusted_votes_are_counted_and_left_out_when_the_setting_says_so(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    settings = {"sequence_size": 4, "summary_min_votes": 1, "exclude_untrusted": True}
    consultation = await load_consultation(settings=settings)
    people_ids = [await enrol(sessions, consultation, clock, {"age": "young"}) for _ in range(3)]
    troll = await enrol(sessions, consultation, clock, {"age": "old"})
    # Honest people take 20 s a card and answer differently; the troll taps every 0.2 s.
    for i, person in enumerate(people_ids):
        for j, key in enumerate(["agree", "disagree", "neutral", "agree"][i:] + ["agree"] * i):
            clock.advance(seconds=20)
            await vote(sessions, clock, person, f"p{j + 1}.en", key)
    for j in range(8):
        clock.advance(seconds=0.2)
        await vote(sessions, clock, troll, f"p{j + 1}.en", "disagree")
    async with sessions() as session, session.begin():  # and says "no way" to p8
        p8 = (await session.exec(select(Proposal).where(Proposal.ref == "p8.en"))).one()
        assert p8.id is not None
        await record_qualification(session, troll, p8.id, QualificationKey.NO_WAY, now=clock())
    async with sessions() as session:
        trust = await consultation_trust(session, consultation)
    assert trust.left_out[p8.id].sequence == {"disagree": 1, "noWay": 1}
    summary = trust.summary
    assert trust.untrusted == {troll}
    assert summary.participants == 4 and summary.untrusted == 1
    assert summary.reasons["too_fast"] == 1 and summary.reasons["same_answer"] == 1
    assert summary.untrusted_votes == 8 and summary.left_out_votes == 8
    assert "participant" not in str(summary.as_dict()).replace("participants", "")
    async with sessions() as session:
        kept = await consultation_report(session, consultation, locale="en", now=clock())
        cleaned = await consultation_report(
            session, consultation, locale="en", now=clock(), left_out=trust.left_out
        )
    by_ref = {p.ref: p for p in cleaned.proposals}
    assert {p.ref: p.votes for p in kept.proposals} == {p.ref: p.votes for p in cleaned.proposals}
    # p5 to p8: only the troll voted; left out, their disagreement is gone from the scores.
    assert by_ref["p8"].weighted_votes == 0
    assert "p8" in kept.rejected and "p8" not in {*cleaned.rejected, *cleaned.controversies}
    assert {p.ref: p for p in kept.proposals}["p8"].weighted_votes == 1
    assert by_ref["p1"].disagree.value < {p.ref: p for p in kept.proposals}["p1"].disagree.value


async def test_an_assessment_is_stored_in_place_of_the_last(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    consultation = await load_consultation()
    honest_one = await enrol(sessions, consultation, clock, {"age": "young"})
    troll = await enrol(sessions, consultation, clock, {"age": "old"})
    for j in range(6):
        clock.advance(seconds=0.2)
        await vote(sessions, clock, troll, f"p{j + 1}.en", ["agree", "disagree"][j % 2])
    for j in range(6):
        clock.advance(seconds=20)
        await vote(sessions, clock, honest_one, f"p{j + 1}.en", "neutral")
    async with sessions() as session, session.begin():
        trust = await record_trust(session, consultation, clock())
    assert trust.untrusted == {troll}
    assert consultation.id is not None
    async with sessions() as session:
        stored = await stored_untrusted(session, consultation.id)
    assert stored == {troll: Verdict(troll, Level.UNTRUSTED, (Reason.TOO_FAST,))}
    # The troll slows down and votes on: the next assessment no longer finds them.
    for j in range(6, 14):
        clock.advance(seconds=40)
        await vote(sessions, clock, troll, f"p{j + 1}.en", ["agree", "disagree"][j % 2])
    async with sessions() as session, session.begin():
        await record_trust(session, consultation, clock())
    async with sessions() as session:
        assert await stored_untrusted(session, consultation.id) == {}


async def test_without_the_setting_untrusted_votes_stay_in_the_scores(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    consultation = await load_consultation()
    troll = await enrol(sessions, consultation, clock, {"age": "old"})
    for j in range(6):
        clock.advance(seconds=0.2)
        await vote(sessions, clock, troll, f"p{j + 1}.en", "agree")
    async with sessions() as session:
        trust = await consultation_trust(session, consultation)
    assert trust.untrusted == {troll} and trust.left_out == {}
    assert trust.summary.untrusted_votes == 6 and trust.summary.left_out_votes == 0


def _population(rng: random.Random) -> list[Behaviour]:
    """A mixed population drawn to trip every rule now and then: people joining in bursts
    from a few sources, fast and slow readers, runs of one answer, link votes on a handful of
    proposals, new identities."""
    people = []
    for pid in range(rng.randint(0, 60)):
        joined = START + timedelta(minutes=rng.choice([0, 1, 2, 3, 30, 300]) + rng.random())
        created = joined - timedelta(hours=rng.choice([0.5, 2, 100]))
        at = joined + timedelta(seconds=rng.uniform(0, 20))
        cards = []
        habit = rng.choice(KEYS)
        for proposal in rng.sample(range(8), rng.randint(0, 8)):
            key = habit if rng.random() < 0.7 else rng.choice(KEYS)
            cards.append(Card(proposal, key, at, rng.choice([10, 60, 300]), rng.random() < 0.6))
            at += timedelta(seconds=rng.choice([0.2, 1.5, 4, 20, 3000]))
        source = rng.choice([None, "poster", "ad"])
        people.append(Behaviour(pid, source, joined, created, tuple(cards)))
    return people


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    burst_size=st.integers(2, 8),
    crowd=st.integers(2, 5),
    sequence_size=st.integers(2, 6),
    min_timed=st.integers(1, 5),
)
def test_the_array_rules_give_the_verdicts_of_the_rules_read_card_by_card(
    seed: int, burst_size: int, crowd: int, sequence_size: int, min_timed: int
) -> None:
    rules = TrustRules(
        burst_size=burst_size,
        crowd=crowd,
        sequence_size=sequence_size,
        min_same_answers=sequence_size,
        min_timed=min_timed,
        push_z=1.0,
        push_gap=0.1,
    )
    behaviours = _population(random.Random(seed))
    expected = {p: set(v.reasons) for p, v in reference.assess(behaviours, rules).items()}
    assert {p: set(v.reasons) for p, v in assess(behaviours, rules).items()} == expected


def test_the_random_populations_trip_every_rule() -> None:
    """The comparison above means something: its populations meet each rule."""
    rules = TrustRules(burst_size=3, crowd=2, sequence_size=3, min_same_answers=3, min_timed=2)
    rules = replace(rules, push_z=1.0, push_gap=0.1)
    met: set[Reason] = set()
    for seed in range(200):
        for verdict in reference.assess(_population(random.Random(seed)), rules).values():
            met |= set(verdict.reasons)
    assert met == set(Reason)


def test_a_burst_that_has_not_voted_yet_is_trusted() -> None:
    """A campaign's first joiners, in a burst from one source before anyone voted: no crash,
    nobody untrusted (the card-by-card rules agree)."""
    joiners = [
        Behaviour(pid, "poster", START + timedelta(seconds=pid), START, ()) for pid in range(25)
    ]
    assert untrusted(joiners) == {}
    assert {p: v.reasons for p, v in reference.assess(joiners, RULES).items()} == {
        p: () for p in range(25)
    }
