"""The organiser's report: hand-computed figures, the lists, and segment suppression."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Consultation, Participant, Participation, Proposal, VoteKey
from core.report import UnknownSegment, consultation_report, consultation_reports
from core.results.votes import read_votes
from core.scoring import Zone
from core.voting import record_vote
from tests.conftest import Loader
from tests.support import Clock

Sessions = async_sessionmaker[AsyncSession]


async def enrol(
    sessions: Sessions, consultation: Consultation, clock: Clock, profile: dict[str, str]
) -> int:
    """A consenting participant with this profile; their id."""
    async with sessions() as session, session.begin():
        participant = Participant(created_at=clock())
        session.add(participant)
        await session.flush()
        assert participant.id is not None and consultation.id is not None
        session.add(
            Participation(
                participant_id=participant.id,
                consultation_id=consultation.id,
                consented_at=clock(),
                profile=profile,
                created_at=clock(),
                updated_at=clock(),
            )
        )
        return participant.id


async def vote(
    sessions: Sessions, clock: Clock, participant: int, ref: str, key: str, trusted: bool = True
) -> None:
    async with sessions() as session, session.begin():
        found = await session.exec(select(Proposal).where(Proposal.ref == ref))
        proposal = found.one()
        assert proposal.id is not None
        await record_vote(
            session, participant, proposal.id, VoteKey(key), trusted=trusted, now=clock()
        )


async def report_of(sessions: Sessions, consultation: Consultation, clock: Clock, **kw: Any):
    async with sessions() as session:
        return await consultation_report(
            session, consultation, locale=kw.pop("locale", "en"), now=clock(), **kw
        )


async def breakdown_from_columns(
    sessions: Sessions, consultation: Consultation, clock: Clock, segment_by: str
) -> Any:
    """The breakdown as a results snapshot computes it: from the votes read as columns."""
    async with sessions() as session:
        assert consultation.id is not None
        columns = await read_votes(session, consultation.id)
        report = await consultation_report(
            session, consultation, locale="en", now=clock(), segment_by=segment_by, columns=columns
        )
    return report.as_dict()["breakdown"]


def smoothed(count: float, votes: float) -> tuple[float, float]:
    rate = (count + 0.33) / (votes + 1)
    return rate, 1.96 * math.sqrt(rate * (1 - rate) / (votes + 1))


async def test_figures_match_a_hand_computation(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    consultation = await load_consultation()
    people = [await enrol(sessions, consultation, clock, {"age": "young"}) for _ in range(4)]
    # p1: 3 agree (two on the French text, one on the English), 1 disagree -> consensus.
    await vote(sessions, clock, people[0], "p1.fr", "agree")
    await vote(sessions, clock, people[1], "p1.fr", "agree")
    await vote(sessions, clock, people[2], "p1.en", "agree")
    await vote(sessions, clock, people[3], "p1.en", "disagree")
    # p2: 2 agree, 2 disagree -> controversy; p3: 4 disagree -> rejected; p4: 3 neutral -> limbo.
    for i, key in enumerate(["agree", "agree", "disagree", "disagree"]):
        await vote(sessions, clock, people[i], "p2.fr", key)
    for person in people:
        await vote(sessions, clock, person, "p3.fr", "disagree")
    for person in people[:3]:
        await vote(sessions, clock, person, "p4.en", "neutral")
    # A vote cast outside a sequence counts half in the scores.
    await vote(sessions, clock, people[0], "p5.fr", "agree", trusted=False)

    report = await report_of(sessions, consultation, clock)
    # Scored once, texts in each language: the same reports as one per language.
    async with sessions() as session:
        each = await consultation_reports(session, consultation, now=clock())
    for locale in ("en", "fr"):
        alone = await report_of(sessions, consultation, clock, locale=locale)
        assert each[locale].as_dict() == alone.as_dict()
    assert (report.slug, report.question) == ("elders", "How can we better care for our elders?")
    assert (report.participants, report.votes) == (4, 4 + 4 + 4 + 3 + 1)
    assert report.proposals_by_status == {"accepted": 14}  # one idea per seed, not per language
    p1 = next(p for p in report.proposals if p.ref == "p1")
    assert p1.text == "We should fund weekly home visits" and p1.votes == 4
    agree, agree_margin = smoothed(3, 4)  # (3 + 0.33) / 5 = 0.666
    assert p1.agree.value == pytest.approx(0.666)
    assert p1.agree.margin == pytest.approx(agree_margin)
    assert p1.agree.margin == pytest.approx(1.96 * math.sqrt(0.666 * 0.334 / 5))
    assert p1.disagree.value == pytest.approx(1.33 / 5)
    assert p1.neutral.value == pytest.approx(0.33 / 5)
    # top = agree + like + doable - noWay - impossible - (platitudeAgree + platitudeDisagree);
    # with no qualification every qualification rate is the prior 0.33 / 5 = 0.066.
    assert p1.top.value == pytest.approx(0.666 + 0.066 + 0.066 - 0.066 - 0.066 - 0.132)
    assert p1.zone is Zone.CONSENSUS

    p5 = next(p for p in report.proposals if p.ref == "p5")
    assert (p5.votes, p5.weighted_votes) == (1, 0.5)
    assert p5.agree.value == pytest.approx((0.5 + 0.33) / 1.5)

    assert report.consensus == ("p1",)
    # p5's one half-vote leaves it at agree 0.553, disagree 0.22: split, less so than p2
    # (controversy min(agree, disagree) + min(likeIt, noWay): 0.466 + 0.066 > 0.22 + 0.22).
    assert report.controversies == ("p2", "p5")
    assert report.rejected == ("p3",)
    assert report.limbo == ("p4",)
    french = await report_of(sessions, consultation, clock, locale="fr")
    assert french.proposals[0].text == "Il faut financer des visites à domicile chaque semaine"
    assert french.question == "Comment mieux prendre soin de nos aînés ?"

    data = report.as_dict()
    assert data["proposals"][0]["agree"] == {
        "value": round(agree, 4),
        "low": round(agree - agree_margin, 4),
        "high": round(agree + agree_margin, 4),
    }
    assert data["breakdown"] is None


@pytest.mark.parametrize("young", [4, 5])
async def test_a_segment_under_the_minimum_shows_no_figures(
    sessions: Sessions, load_consultation: Loader, clock: Clock, young: int
) -> None:
    consultation = await load_consultation()
    youngs = [await enrol(sessions, consultation, clock, {"age": "young"}) for _ in range(young)]
    olds = [await enrol(sessions, consultation, clock, {"age": "old"}) for _ in range(6)]
    # 5 declined to answer: enough people outside the segments that none is found by subtraction.
    others = [await enrol(sessions, consultation, clock, {"age": ""}) for _ in range(5)]
    for person in youngs:
        await vote(sessions, clock, person, "p1.fr", "agree")
    for i, person in enumerate(olds):
        await vote(sessions, clock, person, "p1.en", ["agree", "disagree", "neutral"][i % 3])
    for person in others:
        await vote(sessions, clock, person, "p1.fr", "neutral")
    for person in olds[:4]:  # p2: only 4 of the old voted on it
        await vote(sessions, clock, person, "p2.fr", "agree")

    report = await report_of(sessions, consultation, clock, segment_by="age")
    assert report.breakdown is not None
    assert report.as_dict()["breakdown"] == await breakdown_from_columns(
        sessions, consultation, clock, "age"
    )
    assert report.breakdown.label == "Your age?"
    young_segment, old_segment = report.breakdown.segments
    assert old_segment.participants == 6
    shares = {cell.ref: cell.shares for cell in old_segment.proposals}
    assert shares["p1"] == {"agree": 2 / 6, "disagree": 2 / 6, "neutral": 2 / 6}
    assert shares["p2"] is None  # 4 voters: too few to show
    data = report.as_dict()["breakdown"]["segments"][0]
    if young == 4:
        assert young_segment.suppressed and young_segment.proposals == ()
        assert data == {"option": "young", "label": "Under 40", "suppressed": True, "fewer_than": 5}
    else:
        assert young_segment.participants == 5
        young_shares = {cell.ref: cell.shares for cell in young_segment.proposals}
        assert young_shares["p1"] == {"agree": 1.0, "disagree": 0.0, "neutral": 0.0}
        assert data["participants"] == 5


async def test_no_small_group_is_revealed_by_subtraction(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    consultation = await load_consultation()
    groups = {"young": 5, "old": 6, "": 1}  # one person declined to answer
    people = {
        answer: [await enrol(sessions, consultation, clock, {"age": answer}) for _ in range(n)]
        for answer, n in groups.items()
    }
    for answer, group in people.items():
        for person in group:
            await vote(sessions, clock, person, "p1.fr", "agree" if answer else "disagree")
    for person in people["old"]:
        await vote(sessions, clock, person, "p2.fr", "agree")
    await vote(sessions, clock, people[""][0], "p2.fr", "disagree")

    report = await report_of(sessions, consultation, clock, segment_by="age")
    assert report.breakdown is not None
    assert report.as_dict()["breakdown"] == await breakdown_from_columns(
        sessions, consultation, clock, "age"
    )
    # 12 participants: showing young (5) and old (6) would single out the one who declined,
    # so the smallest shown segment is hidden as well.
    young_segment, old_segment = report.breakdown.segments
    assert (young_segment.participants, old_segment.participants) == (None, 6)
    cells = {cell.ref: cell.shares for cell in old_segment.proposals}
    assert cells["p1"] is not None  # 12 votes, 6 outside the old segment
    assert cells["p2"] is None  # 7 votes: the 6 old ones' shares would give away the 7th vote


async def test_the_zones_thresholds_are_settings(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    """3 agree and 2 disagree: agree (3 + 0.33) / 6 = 0.555, a controversy by default, a
    consensus once the consultation asks only 0.55 for one (the same votes)."""
    consultation = await load_consultation()
    people = [await enrol(sessions, consultation, clock, {"age": "young"}) for _ in range(5)]
    for person, key in zip(people, ["agree"] * 3 + ["disagree"] * 2, strict=True):
        await vote(sessions, clock, person, "p2.fr", key)
    for zones, expected in (({}, Zone.CONTROVERSY), ({"strong": 0.55}, Zone.CONSENSUS)):
        consultation = await load_consultation(settings={"zones": zones})  # updated in place
        report = await report_of(sessions, consultation, clock)
        assert next(p for p in report.proposals if p.ref == "p2").zone is expected


async def test_the_minimum_segment_size_is_a_setting(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    consultation = await load_consultation(settings={"min_segment_size": 2})
    for _ in range(2):
        person = await enrol(sessions, consultation, clock, {"age": "old"})
        await vote(sessions, clock, person, "p1.fr", "agree")
    report = await report_of(sessions, consultation, clock, segment_by="age")
    assert report.breakdown is not None
    assert [s.participants for s in report.breakdown.segments] == [None, 2]


async def test_an_unknown_question_names_the_valid_ones(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    consultation = await load_consultation()
    with pytest.raises(UnknownSegment, match="valid: age") as raised:
        await report_of(sessions, consultation, clock, segment_by="salary")
    assert isinstance(raised.value, ValueError) and raised.value.valid == ("age",)
