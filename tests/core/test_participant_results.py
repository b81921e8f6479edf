"""A participant's /results: the consensus and the controversies of the latest snapshot, and
what their own opinion group agrees on more than the others, placed from their votes when they
ask (nobody's group is stored); played through the conversation on both databases."""

from __future__ import annotations

import random

import numpy as np
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Consultation, Participant, Proposal, VoteKey
from core.results.groups import OpinionGroups, opinion_groups, positions
from core.results.matrix import matrix_from_arrays, vote_matrix
from core.results.placement import Projection, place, published_results
from core.results.recompute import recompute_results
from core.results.snapshot import DEFAULT_SEED, latest_snapshot, projection_payload
from core.voting import CastVote, import_votes
from tests.conftest import ELDER_PROPOSALS, Loader
from tests.support import Chat, Clock

Sessions = async_sessionmaker[AsyncSession]

CONSENSUS = {"p1", "p2"}  # everyone agrees
CAMP_A = {f"p{i}" for i in range(3, 9)}  # camp A agrees, camp B disagrees
CAMP_B = {f"p{i}" for i in range(9, 15)}  # the other way round
SIZES = {"A": 14, "B": 11}
ENGLISH = {f"p{i}": f"We should {en}" for i, (_, en) in enumerate(ELDER_PROPOSALS, start=1)}
FRENCH = {f"p{i}": f"Il faut {fr}" for i, (fr, _) in enumerate(ELDER_PROPOSALS, start=1)}


def agreed_by(camp: str) -> set[str]:
    return CONSENSUS | (CAMP_A if camp == "A" else CAMP_B)


async def _population(sessions: Sessions, clock: Clock, consultation: Consultation) -> dict:
    """Two camps voting on every proposal (one vote in ten neutral, drawn from a seed), half
    of them on the French texts and half on the English ones; each person's id -> camp."""
    draw = random.Random(3)
    async with sessions() as session, session.begin():
        ids = {p.ref: p.id for p in await session.exec(select(Proposal)) if p.ref}
        people = {}
        for camp, size in SIZES.items():
            for _ in range(size):
                person = Participant(created_at=clock())
                session.add(person)
                await session.flush()
                people[person.id] = camp
        votes = []
        for n, (person_id, camp) in enumerate(people.items()):
            for i in range(1, 15):
                key = VoteKey.AGREE if f"p{i}" in agreed_by(camp) else VoteKey.DISAGREE
                if draw.random() < 0.1:
                    key = VoteKey.NEUTRAL
                votes.append(CastVote(person_id, ids[f"p{i}.{('fr', 'en')[n % 2]}"], key))
        await import_votes(session, votes, clock())
    return people


async def _snapshot(sessions: Sessions, clock: Clock, consultation: Consultation) -> None:
    async with sessions() as session, session.begin():
        await recompute_results(session, consultation, clock())
    clock.advance(minutes=1)


async def _refs(sessions: Sessions) -> dict[int, str]:
    async with sessions() as session:
        return {p.id: p.ref.partition(".")[0] for p in await session.exec(select(Proposal))}


async def _vote_as(person: Chat, refs: dict[int, str], camp: str, cards: int = 99) -> None:
    """Answer the cards shown as a member of `camp` would, sequence after sequence."""
    while person.last.card is not None and cards > 0:
        key = "agree" if refs[person.last.card] in agreed_by(camp) else "disagree"
        await person.tap(key)
        cards -= 1
        if person.last.card is None and "skip" in person.options:
            await person.tap("skip")  # the qualification
        if cards and person.last.card is None and "vote" in person.options:
            await person.tap("vote")  # another sequence


def _results_text(person: Chat) -> str:
    return person.last_batch[0].text


async def _computed(sessions: Sessions, clock: Clock, consultation: Consultation) -> dict[int, str]:
    """The two camps voted and their results computed; each proposal id's ref."""
    await _population(sessions, clock, consultation)
    await _snapshot(sessions, clock, consultation)
    return await _refs(sessions)


async def _asks(person: Chat) -> str:
    """What `person` reads after /results."""
    await person.command("results")
    return _results_text(person)


async def test_a_participant_sees_consensus_controversies_and_their_groups_statements(
    sessions: Sessions, load_consultation: Loader, clock: Clock, chat
) -> None:
    consultation = await load_consultation()
    refs = await _computed(sessions, clock, consultation)
    anna = await chat("anna", "en").enrol()
    await _vote_as(anna, refs, "A")
    text = await _asks(anna)
    consensus, _, rest = text.partition("The proposals that divide opinion the most:")
    controversies, _, mine = rest.partition("Your opinion group (14 people) agrees with these")
    assert consensus.startswith("The proposals that bring people together the most:")
    assert ENGLISH["p1"] in consensus and ENGLISH["p2"] in consensus
    assert any(ENGLISH[ref] in controversies for ref in CAMP_A | CAMP_B)
    assert "more than the others do:" in mine
    assert sum(ENGLISH[ref] in mine for ref in CAMP_A) == 3  # three of camp A's statements
    assert not any(ENGLISH[ref] in mine for ref in CAMP_B)
    assert "Il faut" not in text and "Vote on" not in text
    # Translations' counters are added up: every one of the 26 voters counts.
    assert "(26 votes)" in consensus
    assert anna.options == ["vote", "propose", "stop"]
    # Camp B's member is shown camp B's statements, in French.
    bruno = await chat("bruno", "fr").enrol()
    await _vote_as(bruno, refs, "B")
    text = await _asks(bruno)
    assert text.startswith("Les propositions qui rassemblent le plus :")
    assert "Les propositions qui divisent le plus :" in text
    mine = text.partition("Votre groupe d'opinion (11 personnes) approuve celles-ci")[2]
    assert "davantage que les autres groupes :" in mine
    assert any(FRENCH[ref] in mine for ref in CAMP_B)  # as many as its tests retained
    assert not any(FRENCH[ref] in mine for ref in CAMP_A)
    assert "We should" not in text


async def test_too_few_votes_says_how_many_more_place_one_in_a_group(
    sessions: Sessions, load_consultation: Loader, clock: Clock, chat
) -> None:
    consultation = await load_consultation()
    refs = await _computed(sessions, clock, consultation)
    carl = await chat("carl", "en").enrol()
    await _vote_as(carl, refs, "A", cards=2)
    text = await _asks(carl)
    assert "The proposals that bring people together the most:" in text
    assert "Your opinion group" not in text
    assert text.endswith("Vote on 5 more proposals to find out which opinion group you are in.")
    dora = await chat("dora", "fr").enrol()
    await _vote_as(dora, refs, "B", cards=6)
    assert (await _asks(dora)).endswith(
        "Votez sur 1 proposition de plus pour découvrir votre groupe d'opinion."
    )


async def test_a_group_too_small_to_show_is_not_shown_to_its_members(
    sessions: Sessions, load_consultation: Loader, clock: Clock, chat
) -> None:
    settings = {"sequence_size": 4, "results_published": True, "min_segment_size": 12}
    consultation = await load_consultation(settings=settings)
    refs = await _computed(sessions, clock, consultation)
    eve = await chat("eve", "en").enrol()
    await _vote_as(eve, refs, "B")  # camp B's 11 are fewer than 12: not shown
    text = await _asks(eve)
    assert "The proposals that bring people together the most:" in text
    assert "opinion group" not in text


async def test_unpublished_and_before_the_first_snapshot(
    sessions: Sessions, load_consultation: Loader, clock: Clock, chat
) -> None:
    await load_consultation(settings={"sequence_size": 4, "results_published": False})
    fred = await chat("fred", "en").enrol()
    await fred.vote_sequence("agree")
    assert await _asks(fred) == "The results are not published yet."
    await load_consultation()  # published, no snapshot yet: the most agreed on so far
    text = await _asks(fred)
    assert text.startswith("The proposals most agreed on so far:")
    assert "100% agree" in text and "opinion group" not in text


async def test_a_snapshot_from_before_projections_shows_no_group(
    sessions: Sessions, load_consultation: Loader, clock: Clock, chat
) -> None:
    consultation = await load_consultation()
    await _population(sessions, clock, consultation)
    await _snapshot(sessions, clock, consultation)
    async with sessions() as session, session.begin():
        assert consultation.id is not None
        snapshot = await latest_snapshot(session, consultation.id)
        assert snapshot is not None
        older = {k: v for k, v in snapshot.payload.items() if k != "projection"}
        snapshot.payload = older | {"version": 1}
        session.add(snapshot)
    refs = await _refs(sessions)
    gina = await chat("gina", "en").enrol()
    await _vote_as(gina, refs, "A", cards=2)
    text = await _asks(gina)
    assert "The proposals that bring people together the most:" in text
    assert "opinion group" not in text


async def test_long_proposals_keep_the_reply_within_one_message(
    sessions: Sessions, load_consultation: Loader, clock: Clock, chat
) -> None:
    long = [
        {"ref": f"p{i}", "text": {"fr": f"Il faut {'x' * 900} {i}", "en": f"{'y' * 990} {i}"}}
        for i in range(1, 15)
    ]
    settings = {"sequence_size": 4, "results_published": True, "proposal_max_length": 1000}
    consultation = await load_consultation(proposals=long, settings=settings)
    refs = await _computed(sessions, clock, consultation)
    hugo = await chat("hugo", "en").enrol()
    await _vote_as(hugo, refs, "A")
    text = await _asks(hugo)
    assert "Your opinion group (14 people)" in text
    assert text.count("…") == text.count("% agree") >= 7  # every text shortened
    assert len(text) <= 4096


async def test_a_snapshot_is_read_once_by_a_process(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    consultation = await load_consultation()
    await _population(sessions, clock, consultation)
    await _snapshot(sessions, clock, consultation)
    async with sessions() as session:
        first = await published_results(session, consultation)
        assert first is not None and await published_results(session, consultation) is first
    await _snapshot(sessions, clock, consultation)
    async with sessions() as session:
        newer = await published_results(session, consultation)
    async with sessions() as session:
        assert await published_results(session, consultation) is newer is not None
    assert newer.snapshot_id > first.snapshot_id and newer.groups == first.groups


# --- placement against the snapshot's own clustering ------------------------------------------


async def test_placement_gives_the_clustered_the_group_the_snapshot_computed(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    consultation = await load_consultation()
    people = await _population(sessions, clock, consultation)
    await _snapshot(sessions, clock, consultation)
    async with sessions() as session:
        matrix = await vote_matrix(session, consultation)
        found = opinion_groups(matrix, seed=DEFAULT_SEED)  # as the first snapshot did
        assert isinstance(found, OpinionGroups)
        results = await published_results(session, consultation)
        assert results is not None
        placed = {}
        for row, person in enumerate(matrix.participants.tolist()):
            placement = await place(session, person, consultation, results)
            assert placement.group is not None and placement.votes_needed == 0
            assert placement.group.id == found.labels[row]
            placed[person] = placement.group.id
    assert {(placed[p], camp) for p, camp in people.items()} == {(0, "A"), (1, "B")}


def test_projection_places_rows_where_the_clustering_did() -> None:
    rng = np.random.default_rng(5)
    people, columns, values = [], [], []
    for person in range(60):
        camp = person % 2
        for column in rng.choice(40, size=int(rng.integers(7, 40)), replace=False):
            vote = 1 if (column % 2 == camp) != (rng.random() < 0.15) else -1
            people.append(person)
            columns.append(int(column))
            values.append(vote if rng.random() > 0.1 else 0)
    matrix = matrix_from_arrays(
        np.array(people),
        np.array(columns),
        np.array(values, dtype=np.int8),
        [f"q{c}" for c in range(40)],
    )
    found = opinion_groups(matrix, seed=1)
    assert isinstance(found, OpinionGroups)
    base = [
        {"x": float(x), "y": float(y), "group": int(g)}
        for (x, y), g in zip(found.base_centres, found.base_groups, strict=True)
    ]
    projection = Projection.from_payload(projection_payload(matrix, found), base)
    assert projection is not None
    where = positions(matrix, found.pca)
    for row in range(matrix.shape[0]):
        mine = matrix.rows == row
        at = projection.position(matrix.columns[mine].astype(np.int64), matrix.values[mine] * 1.0)
        assert np.allclose(at, where[row], atol=1e-5)
        assert projection.group_at(at) == found.labels[row]
