"""Moderation flags: each text flag on crafted true and false cases, the language flag measured
on real comments, the consultation flags (copies, bursts) stored at submission on both
databases, and the queue orders that use them."""

from __future__ import annotations

import asyncio
import csv

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.definitions import settings_of
from core.i18n import has_message
from core.models import Participant, Participation, Proposal
from core.moderation import Accept, Actor, QueueOrder, Source, decide, next_for, pending_proposals
from core.moderation.flags import Flag, flags_of, has_phone, is_shouting, text_flags
from core.moderation.language import other_language
from core.proposals import submit_proposal
from tests.polis_data import polis_dir

ANA = Actor("ana@example.org", Source.CLI)
BEN = Actor("ben@example.org", Source.CONSOLE)
FR_EN = ["fr", "en"]


def _flags(body: str, locales: list[str] = FR_EN) -> set[Flag]:
    return set(text_flags(body, locales))


@pytest.mark.parametrize(
    "body",
    [
        "see https://example.org/petition",
        "sign at www.example.fr",
        "everything is on example.com",
        "read mon-site.fr/page-culture",
        "look up bit.ly/abc",
        "example dot com has it all",
        "exemple point fr a tout",
        "go to site[.]org",
    ],
)
def test_links_are_flagged(body: str) -> None:
    assert Flag.LINK in _flags(body)


@pytest.mark.parametrize(
    "body",
    [
        "build a pool 3 km from the centre",
        "be carbon neutral by 2030",
        "cut fares by 50%",
        "open the library 24/7",
        "plant trees, e.g. oaks, etc.",
        "raise the budget to 3.5 million",
        "thank M.Dupont for the idea",
        "vote again on 12.05.2024",
        "a point final to the debate",
        "make it the high point of the year",
    ],
)
def test_no_link_in_ordinary_text(body: str) -> None:
    assert Flag.LINK not in _flags(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("write to jane.doe@example.org", True),
        ("write to jane (at) example (dot) org", True),
        ("JANE@EXAMPLE.FR knows", True),
        ("follow @mairie on the networks", False),
        ("meet at the town hall at 5 pm", False),
    ],
)
def test_email_addresses(body: str, expected: bool) -> None:
    flags = _flags(body)
    assert (Flag.EMAIL in flags) is expected
    assert Flag.LINK not in flags  # an address is not counted as a link too


@pytest.mark.parametrize(
    "body",
    [
        "call +33 6 12 34 56 78",
        "call 06 12 34 56 78",
        "call 06.12.34.56.78",
        "call 0612345678",
        "call 06-12-34-56-78",
        "call +33612345678",
        "call +44 20 7946 0958",
        "call +1 (555) 123-4567",
        "call 555-123-4567",
    ],
)
def test_phone_numbers_are_flagged(body: str) -> None:
    assert has_phone(body)


@pytest.mark.parametrize(
    "body",
    [
        "a pool 3 km away",
        "carbon neutral by 2030",
        "50% cheaper",
        "open 24/7",
        "vote on 12/05/2024",
        "vote on 2024-05-12",
        "vote on 12.05.2024 at 10:30",
        "spend 10 000 000 euros",
        "spend 1 500 000 000 euros",
        "compare 1990 2000 2010",
        "between 2025 and 2030",
        "from 2020-2030",
        "bus lines 12, 34 and 56",
    ],
)
def test_no_phone_in_numbers_dates_and_amounts(body: str) -> None:
    assert not has_phone(body)


def test_shouting_needs_mostly_capitals_in_a_long_enough_text() -> None:
    assert is_shouting("BAN ALL CARS FROM THE CITY CENTRE NOW")
    assert is_shouting("INTERDIRE LES VOITURES EN VILLE !!")
    assert not is_shouting("fund the SNCF and the RATP better")
    assert not is_shouting("STOP WAR")  # too short to tell
    assert not is_shouting("make buses free")


def test_repeated_characters() -> None:
    assert Flag.REPEATED_CHARACTERS in _flags("it is sooooo expensive")
    assert Flag.REPEATED_CHARACTERS in _flags("free buses now!!!!!!")
    assert Flag.REPEATED_CHARACTERS not in _flags("plant 1000000 trees")
    assert Flag.REPEATED_CHARACTERS not in _flags("free coffee, really!!")
    assert Flag.REPEATED_CHARACTERS not in _flags("open www.example.org")


def test_a_plain_proposal_has_no_flag() -> None:
    assert _flags("open libraries in the evening") == set()
    assert _flags("ouvrir les bibliothèques le soir") == set()


def test_another_language_is_flagged_only_when_clear() -> None:
    assert other_language("abrir las bibliotecas por la noche", FR_EN) == "es"
    assert other_language("mehr Bäume in der Stadt pflanzen", FR_EN) == "de"
    assert other_language("open libraries in the evening", ["fr"]) == "en"
    assert other_language("ouvrir les bibliothèques le soir", ["en"]) == "fr"
    # French and English with each other's words are neither flagged.
    for body in ("plus de food trucks le week-end", "more café terraces", "stop aux SUV en ville"):
        assert other_language(body, FR_EN) is None
    assert other_language("ok lol", ["fr"]) is None  # too short to tell
    assert other_language("ouvrir les bibliothèques le soir", ["fr-CA"]) is None


def _comments(name: str) -> list[str]:
    with (polis_dir(name) / "comments.csv").open(encoding="utf-8") as source:
        return [row["comment-body"] for row in csv.DictReader(source)]


def test_language_flag_on_real_comments() -> None:
    """Real comments (Polis conversations; CC BY 4.0, The Computational Democracy Project,
    compdemocracy.org/polis): Seattle's English ones are never flagged in an English or a
    French-English consultation; most of vTaiwan's Chinese ones are (the rest: a bare link,
    a few words)."""
    english = _comments("15-per-hour-seattle")
    assert [c for c in english if other_language(c, ["en"])] == []
    assert [c for c in english if other_language(c, FR_EN)] == []
    chinese = _comments("vtaiwan.uberx")
    flagged = [c for c in chinese if other_language(c, FR_EN) == "zh"]
    assert len(flagged) >= 0.9 * len(chinese)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=1000))
def test_any_text_gets_flags_without_failing(body: str) -> None:
    """Whatever a participant types (any script, controls, emoji, 1,000 characters)."""
    assert set(text_flags(body, FR_EN)) <= set(Flag)


def test_every_flag_has_a_label_in_french_and_english() -> None:
    for flag in Flag:
        assert has_message("en", f"moderation.flag.{flag}"), flag
        assert has_message("fr", f"moderation.flag.{flag}"), flag


# The consultation flags, stored at submission, on both databases.


class Authors:
    """Participants by name, each created on first use with an optional recruitment source."""

    def __init__(self, sessions, clock, consultation) -> None:
        self.sessions, self.clock, self.consultation = sessions, clock, consultation
        self.ids: dict[str, int] = {}

    async def propose(self, author: str, typed: str, *, source: str | None = None) -> int:
        async with self.sessions() as session, session.begin():
            return await self.propose_in(session, author, typed, source=source)

    async def propose_in(self, session, author: str, typed: str, *, source=None) -> int:
        if author not in self.ids:
            participant = Participant(created_at=self.clock())
            session.add(participant)
            await session.flush()
            assert participant.id is not None
            self.ids[author] = participant.id
            session.add(
                Participation(
                    participant_id=participant.id,
                    consultation_id=self.consultation.id,
                    source=source,
                    created_at=self.clock(),
                    updated_at=self.clock(),
                )
            )
        proposal = await submit_proposal(
            session,
            self.ids[author],
            self.consultation.id,
            typed,
            "en",
            settings_of(self.consultation),
            self.clock(),
        )
        assert proposal.id is not None
        return proposal.id


async def _flags_of(sessions, *ids: int) -> list[set[Flag]]:
    async with sessions() as session:
        found = [await session.get(Proposal, i) for i in ids]
        return [set(flags_of(p)) for p in found if p is not None]


async def test_text_flags_are_stored_at_submission_and_served_with_the_proposal(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    authors = Authors(sessions, clock, consultation)
    plain = await authors.propose("x", "We should open libraries late")
    clock.advance(minutes=1)
    shouted = await authors.propose("y", "We should CALL 06 12 34 56 78 TO JOIN OUR CLUB!!!!")
    assert await _flags_of(sessions, plain, shouted) == [
        set(),
        {Flag.PHONE, Flag.SHOUTING, Flag.REPEATED_CHARACTERS},
    ]
    async with sessions() as session, session.begin():
        served = await next_for(session, consultation.id, ANA.organiser, clock())
        assert served is not None and served.id == plain and served.flags == ()
        served = await next_for(session, consultation.id, BEN.organiser, clock())
    assert served is not None and served.id == shouted
    assert served.flags == (Flag.PHONE, Flag.SHOUTING, Flag.REPEATED_CHARACTERS)


async def test_the_same_text_from_several_participants_flags_every_copy(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    authors = Authors(sessions, clock, consultation)
    first = await authors.propose("x", "We should plant more trees in schools!")
    again = await authors.propose("x", "we should plant more trees in schools")
    other = await authors.propose("y", "We should open libraries late")
    assert await _flags_of(sessions, first, again, other) == [set(), set(), set()]
    clock.advance(hours=2)
    copy = await authors.propose("z", "We should   PLANT more trees in schools...")
    # Every copy is flagged, the author's own repeat too once another participant copies it.
    assert await _flags_of(sessions, first, again, copy, other) == [
        {Flag.SAME_TEXT},
        {Flag.SAME_TEXT},
        {Flag.SAME_TEXT},
        set(),
    ]


async def test_two_copies_submitted_at_the_same_moment_flag_each_other(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    authors = Authors(sessions, clock, consultation)
    await authors.propose("x", "We should open libraries late")  # known participants
    await authors.propose("y", "We should plant trees")
    barrier = asyncio.Barrier(2)

    async def copy(author: str) -> int:
        async with sessions() as session, session.begin():
            await barrier.wait()  # both transactions open, neither has written
            return await authors.propose_in(session, author, "We should ban cars downtown")

    ids = await asyncio.gather(copy("x"), copy("y"))
    assert await _flags_of(sessions, *ids) == [{Flag.SAME_TEXT}, {Flag.SAME_TEXT}]


async def test_a_burst_from_one_participant_flags_the_burst(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation(
        settings={"max_proposals_per_day": 10, "flags": {"author": 3, "minutes": 10}}
    )
    authors = Authors(sessions, clock, consultation)
    early = await authors.propose("x", "We should open libraries late")
    clock.advance(minutes=30)
    burst = []
    for typed in ("We should plant trees", "We should fix roads", "We should paint walls"):
        burst.append(await authors.propose("x", typed))
        clock.advance(minutes=4)
    calm = await authors.propose("y", "We should build a pool")
    assert await _flags_of(sessions, early, *burst, calm) == [
        set(),
        {Flag.BURST_AUTHOR},
        {Flag.BURST_AUTHOR},
        {Flag.BURST_AUTHOR},
        set(),
    ]


async def test_a_burst_from_one_recruitment_source_flags_the_burst(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation(settings={"flags": {"source": 3, "minutes": 10}})
    authors = Authors(sessions, clock, consultation)
    texts = iter(f"We should do thing number {n}" for n in range(10))
    old = await authors.propose("a", next(texts), source="ad")
    clock.advance(minutes=11)
    first = await authors.propose("b", next(texts), source="ad")
    poster = await authors.propose("p", next(texts), source="poster")
    none = await authors.propose("n", next(texts))
    second = await authors.propose("c", next(texts), source="ad")
    assert await _flags_of(sessions, old, first, second) == [set(), set(), set()]
    clock.advance(minutes=5)
    third = await authors.propose("d", next(texts), source="ad")
    assert await _flags_of(sessions, old, first, second, third, poster, none) == [
        set(),
        {Flag.BURST_SOURCE},
        {Flag.BURST_SOURCE},
        {Flag.BURST_SOURCE},
        set(),
        set(),
    ]


async def _proposals(authors: Authors, clock, texts: list[tuple[str, str]]) -> list[int]:
    ids = []
    for author, typed in texts:
        ids.append(await authors.propose(author, typed))
        clock.advance(minutes=1)
    return ids


async def _next(sessions, consultation, actor, clock, order) -> int | None:
    async with sessions() as session, session.begin():
        served = await next_for(session, consultation.id, actor.organiser, clock(), order=order)
    return None if served is None else served.id


async def test_flagged_first_serves_flagged_proposals_oldest_first_then_the_rest(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    authors = Authors(sessions, clock, consultation)
    plain1, link, plain2, phone = await _proposals(
        authors,
        clock,
        [
            ("w", "We should open libraries late"),
            ("x", "We should read example.com"),
            ("y", "We should plant trees"),
            ("z", "We should call 06 12 34 56 78"),
        ],
    )
    flagged = QueueOrder.FLAGGED
    assert await _next(sessions, consultation, ANA, clock, QueueOrder.OLDEST) == plain1
    assert await _next(sessions, consultation, BEN, clock, flagged) == link
    carl = Actor("carl@example.org", Source.API)
    assert await _next(sessions, consultation, carl, clock, flagged) == phone  # link is Ben's
    dan = Actor("dan@example.org", Source.API)
    assert await _next(sessions, consultation, dan, clock, flagged) == plain2  # none flagged left
    assert await _next(sessions, consultation, BEN, clock, flagged) == link  # still his
    async with sessions() as session:
        page, total = await pending_proposals(session, consultation.id, flagged_first=True)
        assert total == 4 and [p.id for p in page] == [link, phone, plain1, plain2]
        assert [p.flags for p in page] == [(Flag.LINK,), (Flag.PHONE,), (), ()]
        page, total = await pending_proposals(session, consultation.id, flag=Flag.PHONE)
        assert total == 1 and [p.id for p in page] == [phone]


async def test_an_author_batch_is_served_whole_before_the_oldest(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation(settings={"flags": {"author": 10}})
    authors = Authors(sessions, clock, consultation)
    x1, y1, x2, z1, x3 = await _proposals(
        authors,
        clock,
        [
            ("x", "We should open libraries late"),
            ("y", "We should plant trees"),
            ("x", "We should fix roads"),
            ("z", "We should build a pool"),
            ("x", "We should paint walls"),
        ],
    )
    batch = QueueOrder.AUTHOR_BATCH
    served = []
    for _ in range(5):
        proposal_id = await _next(sessions, consultation, ANA, clock, batch)
        assert proposal_id is not None
        served.append(proposal_id)
        async with sessions() as session, session.begin():
            await decide(session, proposal_id, Accept(), ANA, clock())
    assert served == [x1, x2, x3, y1, z1]
    assert await _next(sessions, consultation, ANA, clock, batch) is None


def test_stored_flags_are_read_in_flag_order_and_unknown_ones_left_out() -> None:
    proposal = Proposal(consultation_id=1, locale="en", text="x", flags="phone link retired-flag")
    assert flags_of(proposal) == (Flag.LINK, Flag.PHONE)
    assert flags_of(Proposal(consultation_id=1, locale="en", text="x")) == ()


async def test_a_proposal_shown_at_once_is_flagged_too(load_consultation, sessions, clock) -> None:
    """Post-moderation: nothing waits, but a moderator can still find what to look at."""
    consultation = await load_consultation(settings={"moderation": "post"})
    authors = Authors(sessions, clock, consultation)
    shown = await authors.propose("x", "We should write to mayor@example.org")
    async with sessions() as session:
        proposal = await session.get(Proposal, shown)
        assert proposal is not None and proposal.status == "accepted"
        assert flags_of(proposal) == (Flag.EMAIL,)
