"""Whole conversations played through the core, in both locales."""

from __future__ import annotations

from sqlmodel import select

from core.models import Participation, Proposal, Qualification, Tally, Vote
from tests.support import Chat


async def test_french_participant_consents_votes_qualifies_and_proposes(
    load_consultation, chat, sessions
) -> None:
    await load_consultation()
    alice: Chat = chat("alice", "fr-FR")

    await alice.start("elders__gazette")
    assert "Bienvenue" in alice.text
    assert alice.options == ["accept", "decline"]

    await alice.tap("accept")
    assert alice.options == ["young", "old", "skip"]
    await alice.tap("old")

    assert "Comment mieux prendre soin de nos aînés ?" in alice.text
    assert alice.last.card is not None
    assert alice.last.text.startswith("Proposition 1/4")
    assert alice.options == ["agree", "disagree", "neutral", "skip"]

    first_card = alice.last.card
    await alice.tap("agree")
    assert alice.options == ["likeIt", "doable", "platitudeAgree", "skip"]
    await alice.tap("likeIt")
    assert alice.last.text.startswith("Proposition 2/4")
    await alice.tap("disagree")
    assert alice.options == ["noWay", "impossible", "platitudeDisagree", "skip"]
    await alice.tap("skip")
    await alice.tap("neutral")
    await alice.tap("doNotCare")
    await alice.tap("skip")  # the fourth card, skipped

    assert "Voici comment les autres participants ont voté" in alice.text
    assert "100\u00a0%" in alice.text  # formatted for French (no-break space)
    assert alice.options == ["vote", "propose", "stop"]

    await alice.tap("propose")
    assert "Il faut" in alice.text
    await alice.type("créer des visites « amicales » <b>chaque</b> semaine 👵🏽")
    # an accepted proposal says nearly the same: she may vote for it instead; she sends hers
    assert alice.options == ["similar", "confirm", "edit", "cancel"]
    assert "n°1 Il faut financer des visites à domicile chaque semaine" in alice.text
    assert "Il faut créer des visites « amicales » <b>chaque</b> semaine 👵🏽" in alice.text
    await alice.tap("confirm")
    assert "modérateurs" in alice.text
    assert alice.options == ["vote", "propose", "stop"]

    async with sessions() as session:
        votes = list(await session.exec(select(Vote)))
        assert sorted(v.key for v in votes) == ["agree", "disagree", "neutral"]
        assert all(v.trusted for v in votes)
        qualifications = list(await session.exec(select(Qualification)))
        assert sorted(q.key for q in qualifications) == ["doNotCare", "likeIt"]
        tally = await session.get(Tally, (first_card, "agree", True))
        assert tally is not None and tally.count == 1
        liked = await session.get(Tally, (first_card, "likeIt", True))
        assert liked is not None and liked.count == 1
        mine = (await session.exec(select(Proposal).where(Proposal.author_id.is_not(None)))).one()
        assert mine.status == "pending"
        assert mine.locale == "fr"
        participation = (await session.exec(select(Participation))).one()
        assert participation.source == "gazette"
        assert participation.profile == {"age": "old"}
        assert participation.consented_at is not None


async def test_english_participant_reads_everything_in_english(load_consultation, chat) -> None:
    await load_consultation()
    bob: Chat = chat("bob", "en-GB")
    await bob.start()
    assert "How can we better care for our elders?" in bob.text
    await bob.tap("accept")
    await bob.tap("skip")  # profile question
    assert bob.last.text.startswith("Proposal 1/4")
    assert "We should" in bob.last.text
    voted = await bob.vote_sequence("agree", "doable")
    assert voted == 4
    assert "Here is how other participants voted" in bob.text
    assert "100%" in bob.text
    assert "1 vote" in bob.text
