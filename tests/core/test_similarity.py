"""Similar proposals and ideas on both databases: what a lookup finds and leaves out, the
index following every way a proposal is written, and moderators grouping proposals."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlmodel import col, select

from core.definitions import parse_consultation, settings_of, upsert_consultation
from core.flow import Flow
from core.models import AuditEntry, Participant, Proposal, ProposalTerm, TermCount, Vote
from core.moderation import (
    Accept,
    Actor,
    IdeaNameRefused,
    Similar,
    Source,
    UnknownIdea,
    UnknownProposal,
    Withdraw,
    add_to_idea,
    create_idea,
    decide,
    ideas_of,
    similar_proposals,
)
from core.moderation.index import ALL, index_rows
from core.moderation.similarity import Profile, score
from core.moderation.text import TERM_LENGTH, content_words, terms
from core.proposals import submit_proposal
from core.storage import create_engine, migrate
from tests.conftest import SECRET, consultation_data
from tests.support import Chat

ANA = Actor("ana@example.org", Source.CONSOLE)


async def _submit(sessions, clock, consultation, typed: str, locale: str = "fr") -> int:
    async with sessions() as session, session.begin():
        participant = Participant(created_at=clock())
        session.add(participant)
        await session.flush()
        assert participant.id is not None
        proposal = await submit_proposal(
            session,
            participant.id,
            consultation.id,
            typed,
            locale,
            settings_of(consultation),
            clock(),
        )
        assert proposal.id is not None
        return proposal.id


async def _similar(
    sessions, consultation, typed: str, locale: str = "fr", **options
) -> list[Similar]:
    async with sessions() as session:
        return await similar_proposals(session, consultation.id, typed, locale, **options)


async def _ref_id(sessions, consultation, ref: str) -> int:
    async with sessions() as session:
        found = await session.exec(
            select(Proposal.id).where(
                Proposal.consultation_id == consultation.id, Proposal.ref == ref
            )
        )
        return found.one()


def test_the_framing_every_proposal_shares_is_no_term() -> None:
    assert terms("Il faudrait qu'on puisse faire plus de choses", "fr") == terms(
        "puisse choses", "fr"
    )
    assert terms("We should really make more of it", "en") == frozenset()
    # stemmed, accents and plurals dropped alike, elisions split
    assert terms("Il faut des vélos à l'école", "fr") == terms(
        "Il faut un velo pour les écoles", "fr"
    )
    assert terms("We should run buses", "en") == terms("We should run a bus", "en")
    assert content_words("Des bus, la NUIT !", "fr") == ["bus", "nuit"]
    # a language without a stemmer keeps its words whole
    assert terms("Tarvitaan yöbusseja", "xx") == {"tarvitaan", "yobusseja"}


@given(
    st.text(max_size=300), st.text(max_size=300), st.sampled_from(["fr", "en", "fr_CA", "xx", ""])
)
@settings(max_examples=300, deadline=None)
def test_any_text_gives_bounded_terms_and_a_score_in_range(a: str, b: str, locale: str) -> None:
    """Whatever a participant types (any script, control characters, a 300-letter word)."""
    found = terms(a, locale)
    assert all(0 < len(term) <= TERM_LENGTH and term == term.casefold() for term in found)
    weights = {term: 1.5 for term in found}
    value = score(Profile.of(a, locale), Profile.of(b, locale), weights)
    assert 0.0 <= value <= 1.0
    assert score(Profile.of(a, locale), Profile.of(b, locale), weights) == pytest.approx(
        score(Profile.of(b, locale), Profile.of(a, locale), weights)
    )


def test_the_score_is_symmetric_and_bounded() -> None:
    a = Profile.of("We should run night buses after concerts", "en")
    b = Profile.of("Night buses after concerts, please", "en")
    c = Profile.of("We should plant trees in schoolyards", "en")
    weights = {"night": 2.0, "bus": 1.0, "concert": 3.0}
    assert score(a, a, weights) == pytest.approx(1.0)
    assert score(a, b, weights) == pytest.approx(score(b, a, weights))
    assert 0.0 < score(a, b, weights) < 1.0
    assert score(a, c, weights) < score(a, b, weights)
    assert score(a, Profile.of("", "en"), weights) == 0.0


async def test_a_proposal_that_says_the_same_is_found_best_first(
    sessions, load_consultation
) -> None:
    consultation = await load_consultation()
    free_buses = await _ref_id(sessions, consultation, "p9.fr")

    found = await _similar(
        sessions, consultation, "Il faut que les bus soient gratuits après 70 ans"
    )

    assert found and found[0].proposal_id == free_buses
    assert found[0].text == "Il faut rendre les bus gratuits après 70 ans"
    assert found[0].status == "accepted" and 0.0 < found[0].score <= 1.0
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)
    english = await _similar(sessions, consultation, "Buses should be free after seventy", "en")
    assert english[0].proposal_id == await _ref_id(sessions, consultation, "p9.en")


async def test_only_the_framing_or_another_idea_finds_nothing(sessions, load_consultation) -> None:
    consultation = await load_consultation()
    assert await _similar(sessions, consultation, "Il faudrait faire plus de choses") == []
    assert await _similar(sessions, consultation, "Il faut repeindre la mairie en bleu") == []
    assert await _similar(sessions, consultation, "") == []
    assert await _similar(sessions, consultation, "rendre les bus gratuits", limit=0) == []


async def test_limit_exclusion_and_statuses(sessions, load_consultation, clock) -> None:
    consultation = await load_consultation()
    pending = await _submit(sessions, clock, consultation, "rendre les bus gratuits après 70 ans !")
    other = await _submit(sessions, clock, consultation, "des bus gratuits pour les plus de 70 ans")
    typed = "Il faut rendre les bus gratuits après 70 ans"

    accepted_only = await _similar(sessions, consultation, typed)
    assert {s.proposal_id for s in accepted_only}.isdisjoint({pending, other})
    both = await _similar(sessions, consultation, typed, statuses=("accepted", "pending"), limit=5)
    assert {pending, other} <= {s.proposal_id for s in both}
    assert {s.status for s in both} == {"accepted", "pending"}
    one = await _similar(sessions, consultation, typed, statuses=("pending",), limit=1)
    assert len(one) == 1 and one[0].proposal_id == pending
    without = await _similar(
        sessions, consultation, typed, statuses=("pending",), exclude_id=pending
    )
    assert [s.proposal_id for s in without] == [other]
    elsewhere = await load_consultation(slug="elsewhere")
    assert await _similar(sessions, elsewhere, typed, statuses=("pending",)) == []


async def test_the_index_follows_acceptance_and_an_edit(sessions, load_consultation, clock) -> None:
    consultation = await load_consultation()
    proposal = await _submit(
        sessions, clock, consultation, "planter des cerisiers sur la place du marché"
    )
    assert await _similar(sessions, consultation, "des cerisiers place du marché") == []

    async with sessions() as session, session.begin():
        await decide(
            session,
            proposal,
            Accept(text="planter des tilleuls sur la place du marché"),
            ANA,
            clock(),
        )

    found = await _similar(sessions, consultation, "des tilleuls sur la place du marché")
    assert [s.proposal_id for s in found] == [proposal]
    assert found[0].status == "accepted"
    found = await _similar(sessions, consultation, "des cerisiers", statuses=("accepted",))
    assert proposal not in {s.proposal_id for s in found}


async def _index(sessions) -> tuple[Counter[tuple[int, str, int, str]], Counter[tuple[int, str]]]:
    async with sessions() as session:
        postings = Counter(
            (row.proposal_id, row.term, row.consultation_id, row.status)
            for row in await session.exec(select(ProposalTerm))
        )
        counts = Counter(
            {
                (row.consultation_id, row.term): row.proposals
                for row in await session.exec(select(TermCount))
                if row.proposals
            }
        )
        proposals = list(await session.exec(select(Proposal).order_by(col(Proposal.id))))
    rebuilt_postings, rebuilt_counts = index_rows(
        (p.id, p.consultation_id, p.text, p.locale, p.status) for p in proposals
    )
    expected_postings = Counter(
        (r["proposal_id"], r["term"], r["consultation_id"], r["status"]) for r in rebuilt_postings
    )
    expected_counts = Counter(
        {(r["consultation_id"], r["term"]): r["proposals"] for r in rebuilt_counts}
    )
    assert postings == expected_postings
    assert counts == expected_counts
    return postings, counts


async def test_the_index_is_what_rebuilding_it_gives_after_every_kind_of_write(
    sessions, load_consultation, clock
) -> None:
    consultation = await load_consultation()
    first = await _submit(sessions, clock, consultation, "des navettes électriques vers la gare")
    await _submit(sessions, clock, consultation, "More benches near the station", "en")
    async with sessions() as session, session.begin():
        await decide(
            session, first, Accept(text="des navettes vers la gare routière"), ANA, clock()
        )
    data = consultation_data()
    data["proposals"][0]["text"]["fr"] = "Il faut financer des visites chaque mois"
    async with sessions() as session, session.begin():
        await upsert_consultation(session, parse_consultation(data), clock())

    _, counts = await _index(sessions)
    assert counts[(consultation.id, ALL)] == 14 * 2 + 2


async def test_proposals_sent_at_the_same_moment_are_all_counted(
    sessions, load_consultation, clock
) -> None:
    """Concurrent submissions share terms, new and old: each count moves once per proposal
    (on PostgreSQL, two first uses of a term race on its row)."""
    consultation = await load_consultation()
    texts = [
        f"des navettes {word} vers la gare et le marché"
        for word in ("électriques", "gratuites", "de nuit", "rapides", "du dimanche", "solaires")
    ]
    await asyncio.gather(*(_submit(sessions, clock, consultation, typed) for typed in texts))

    _, counts = await _index(sessions)
    assert counts[(consultation.id, "navet")] == len(texts)
    assert counts[(consultation.id, ALL)] == 14 * 2 + len(texts)


async def test_migrating_indexes_the_proposals_already_there(database_url) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine, "0009")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO consultation (id, slug, status, audience, default_locale,"
                    " locales, question, privacy_notice, settings, profile_questions,"
                    " created_at, updated_at) VALUES (1, 'c', 'open', 'citizens', 'en', '[]',"
                    " '{}', '{}', '{}', '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            for number, (body, status) in enumerate(
                (("We should run night buses", "accepted"), ("More night trains", "pending")), 1
            ):
                await connection.execute(
                    text(
                        "INSERT INTO proposal (id, consultation_id, locale, text, status,"
                        " vote_count, agree_count, disagree_count, neutral_count, agree_score,"
                        " split_score, created_at, updated_at) VALUES (:id, 1, 'en', :body,"
                        " :status, 0, 0, 0, 0, 0, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"id": number, "body": body, "status": status},
                )
        await migrate(engine)
        async with engine.connect() as connection:
            postings = set(
                await connection.execute(text("SELECT proposal_id, term, status FROM proposalterm"))
            )
            counts = dict(
                (await connection.execute(text("SELECT term, proposals FROM termcount"))).all()
            )
    finally:
        await engine.dispose()
    assert postings == {
        (1, "run", "accepted"),
        (1, "night", "accepted"),
        (1, "bus", "accepted"),
        (2, "night", "pending"),
        (2, "train", "pending"),
    }
    assert counts == {"": 2, "run": 1, "night": 2, "bus": 1, "train": 1}


class _Everything:
    """An operator's own similarity (an embedding model they host) stands in for the default."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, str, str, tuple[str, ...], int, int | None]] = []

    async def similar(self, session, consultation_id, text, locale, *, statuses, limit, exclude_id):
        self.asked.append((consultation_id, text, locale, statuses, limit, exclude_id))
        return [Similar(1, "any", "accepted", 0.5)][:limit]


async def test_an_operator_plugs_in_their_own_similarity(sessions, load_consultation) -> None:
    consultation = await load_consultation()
    theirs = _Everything()
    async with sessions() as session:
        found = await similar_proposals(
            session, consultation.id, "anything", "en", limit=2, exclude_id=3, similarity=theirs
        )
    assert found == [Similar(1, "any", "accepted", 0.5)]
    assert theirs.asked == [(consultation.id, "anything", "en", ("accepted",), 2, 3)]


async def test_moderators_group_proposals_into_ideas(sessions, load_consultation, clock) -> None:
    consultation = await load_consultation()
    other = await load_consultation(slug="other")
    ids = [await _ref_id(sessions, consultation, f"p{i}.fr") for i in (1, 2, 3)]
    stranger = await _ref_id(sessions, other, "p1.fr")

    async with sessions() as session, session.begin():
        buses = await create_idea(
            session, consultation.id, "  Bus   gratuits ", ANA, clock(), ids[:2]
        )
    assert buses.name == "Bus gratuits" and buses.proposal_ids == tuple(ids[:2])

    async with sessions() as session, session.begin():
        visits = await create_idea(session, consultation.id, "Visites", ANA, clock())
        moved = await add_to_idea(session, visits.id, [ids[1], ids[2], ids[2]], ANA, clock())
    assert moved.proposal_ids == (ids[1], ids[2])

    for refused, call in (
        (IdeaNameRefused, lambda s: create_idea(s, consultation.id, "Visites", ANA, clock())),
        (IdeaNameRefused, lambda s: create_idea(s, consultation.id, "  ", ANA, clock())),
        (IdeaNameRefused, lambda s: create_idea(s, consultation.id, "x" * 201, ANA, clock())),
        (UnknownProposal, lambda s: add_to_idea(s, visits.id, [ids[0], stranger], ANA, clock())),
        (UnknownProposal, lambda s: create_idea(s, consultation.id, "New", ANA, clock(), [99999])),
        (UnknownIdea, lambda s: add_to_idea(s, 99999, [ids[0]], ANA, clock())),
    ):
        async with sessions() as session, session.begin():
            with pytest.raises(refused):
                await call(session)

    async with sessions() as session:
        ideas = await ideas_of(session, consultation.id)
        assert await ideas_of(session, other.id) == []
        audit = list(
            await session.exec(
                select(AuditEntry)
                .where(AuditEntry.consultation_id == consultation.id)
                .order_by(col(AuditEntry.id))
            )
        )
    assert [(idea.name, idea.proposal_ids) for idea in ideas] == [
        ("Bus gratuits", (ids[0],)),
        ("Visites", (ids[1], ids[2])),
    ]
    assert [(entry.action, entry.target, entry.actor, entry.source) for entry in audit] == [
        ("idea.create", f"idea:{buses.id}", ANA.organiser, "console"),
        ("idea.create", f"idea:{visits.id}", ANA.organiser, "console"),
        ("idea.add", f"idea:{visits.id}", ANA.organiser, "console"),
    ]
    assert audit[2].detail == {
        "proposals": [ids[1], ids[2]],
        "moved_from": {str(ids[1]): buses.id},
    }


# At submission, before the confirmation: the participant's side.


async def _ready_to_propose(chat, user: str, hint: str):
    participant = await chat(user, hint).enrol()
    await participant.vote_sequence()
    await participant.tap("propose")
    return participant


async def test_a_participant_votes_for_the_proposal_that_says_the_same_instead(
    load_consultation, chat, sessions
) -> None:
    consultation = await load_consultation()
    helpline = await _ref_id(sessions, consultation, "p13.fr")
    ines = await _ready_to_propose(chat, "ines", "fr")

    await ines.type("créer un numéro d'écoute national pour les aînés")

    assert "D'autres participants ont déjà proposé presque la même chose" in ines.text
    assert "n°1 Il faut créer un numéro d'écoute national" in ines.text
    assert "Il faut créer un numéro d'écoute national pour les aînés" in ines.text  # hers
    assert ines.last.pick is not None
    offered = [option.id for option in ines.last.pick.options]
    assert offered[0] == f"similar.{helpline}" and offered[-3:] == ["confirm", "edit", "cancel"]
    assert len(offered) <= 6
    assert ines.last.pick.options[0].label == "Voter pour la n°1"

    await ines.tap("similar")

    assert "Votre vote pour « Il faut créer un numéro d'écoute national » est compté" in ines.text
    assert ines.options == ["vote", "propose", "stop"]
    async with sessions() as session:
        vote = (await session.exec(select(Vote).where(Vote.proposal_id == helpline))).one()
        assert (vote.key, vote.trusted) == ("agree", False)
        proposal = await session.get(Proposal, helpline)
        assert proposal is not None and proposal.vote_count == 1
        assert proposal.agree_count == 0  # not a sequence's vote: sequencing's scores stay
        authored = select(Proposal).where(col(Proposal.author_id).is_not(None))
        assert list(await session.exec(authored)) == []


async def test_a_participant_sends_theirs_anyway(load_consultation, chat, sessions) -> None:
    await load_consultation()
    bob = await _ready_to_propose(chat, "bob", "en")

    await bob.type("set up a national helpline for older people")
    assert "Other participants have already proposed nearly the same" in bob.text
    assert "#1 We should set up a national helpline" in bob.text
    assert bob.last.pick is not None and bob.last.pick.options[-3].label == "Send mine"

    await bob.tap("confirm")

    assert "checked by the moderators" in bob.text
    async with sessions() as session:
        mine = (
            await session.exec(select(Proposal).where(col(Proposal.author_id).is_not(None)))
        ).one()
        assert mine.text == "We should set up a national helpline for older people"
        assert all(vote.trusted for vote in await session.exec(select(Vote)))  # cards only


async def test_a_proposal_withdrawn_before_the_tap_is_not_voted_for(
    load_consultation, chat, sessions, clock
) -> None:
    consultation = await load_consultation()
    helpline = await _ref_id(sessions, consultation, "p13.en")
    bob = await _ready_to_propose(chat, "bob", "en")
    await bob.type("set up a national helpline for older people")
    async with sessions() as session, session.begin():
        await decide(session, helpline, Withdraw(), ANA, clock())

    await bob.tap(f"similar.{helpline}")

    assert "That proposal is no longer shown" in bob.text
    assert f"similar.{helpline}" not in {o.id for o in bob.last.pick.options}
    assert bob.options[-3:] == ["confirm", "edit", "cancel"]
    async with sessions() as session:
        assert list(await session.exec(select(Vote).where(Vote.proposal_id == helpline))) == []


async def test_rewriting_looks_again_and_nothing_similar_asks_as_before(
    load_consultation, chat
) -> None:
    await load_consultation()
    bob = await _ready_to_propose(chat, "bob", "en")
    await bob.type("set up a national helpline for older people")
    assert bob.options[0] == "similar"

    await bob.tap("edit")
    await bob.type("paint the town hall in bright colours")

    assert bob.options == ["confirm", "edit", "cancel"]
    assert "Send it?" in bob.text


async def test_the_flow_asks_the_similarity_it_was_given(
    load_consultation, sessions, clock
) -> None:
    """An operator's model, injected into the flow, is what a submission asks."""
    consultation = await load_consultation()
    theirs = _Everything()
    flow = Flow(sessions, SECRET, clock=clock, rng=random.Random(7), similarity=theirs)
    carla = await _ready_to_propose(lambda user, hint: Chat(flow, user, hint), "carla", "en")

    await carla.type("paint the town hall in bright colours")

    typed = "We should paint the town hall in bright colours"
    assert theirs.asked == [(consultation.id, typed, "en", ("accepted",), 3, None)]
    assert "#1 any" in carla.text and carla.options[0] == "similar"
