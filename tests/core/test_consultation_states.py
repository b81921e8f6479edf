"""Closed, vote-only, scheduled and unknown consultations."""

from __future__ import annotations

from datetime import timedelta

from tests.support import Chat


async def test_closed_consultation_says_so_and_shows_published_results(
    load_consultation, chat
) -> None:
    await load_consultation(status="closed")
    tom: Chat = chat("tom", "en")
    await tom.start("elders")
    assert "“How can we better care for our elders?” is closed" in tom.text
    assert "No proposal has enough votes yet" in tom.text


async def test_closing_mid_conversation_stops_voting(load_consultation, chat) -> None:
    await load_consultation()
    uma: Chat = chat("uma", "fr")
    await uma.start()
    await uma.tap("accept")
    await load_consultation(status="closed")
    await uma.tap("skip")
    assert "est terminée" in uma.text
    assert uma.last.pick is None


async def test_schedule_decides_when_the_consultation_is_open(
    load_consultation, chat, clock
) -> None:
    await load_consultation(
        starts_at=clock.now + timedelta(days=1), ends_at=clock.now + timedelta(days=2)
    )
    vic: Chat = chat("vic", "en")
    await vic.start("elders")
    assert "has not started yet" in vic.text
    clock.advance(days=1, hours=1)
    await vic.start("elders")
    assert vic.options == ["accept", "decline"]
    clock.advance(days=1)
    await vic.tap("accept")
    assert "is closed" in vic.text


async def test_vote_only_consultation_does_not_offer_proposing(load_consultation, chat) -> None:
    await load_consultation(status="vote-only")
    wes: Chat = chat("wes", "en")
    await wes.start()
    await wes.tap("accept")
    await wes.tap("old")
    await wes.vote_sequence("neutral", "noOpinion")
    assert wes.options == ["vote", "stop"]
    await wes.command("propose")
    assert "no longer accepted" in wes.text
    assert wes.options == ["vote", "stop"]


async def test_unknown_deep_link_lists_the_open_consultations(load_consultation, chat) -> None:
    await load_consultation()
    await load_consultation(
        slug="transport", question={"fr": "Quels transports ?", "en": "Which transport?"}
    )
    await load_consultation(slug="drafty", status="draft")
    xia: Chat = chat("xia", "en")
    await xia.start("nope__poster")
    assert "I don't know that consultation" in xia.text
    assert [o.label for o in xia.last.pick.options] == [
        "How can we better care for our elders?",
        "Which transport?",
    ]
    await xia.start("drafty")
    assert "I don't know that consultation" in xia.text
    await xia.type("2")
    assert "Welcome! This consultation asks: Which transport?" in xia.text
    assert xia.options == ["accept", "decline"]


async def test_malformed_deep_link_is_treated_as_unknown(load_consultation, chat) -> None:
    await load_consultation()
    yan: Chat = chat("yan", "en")
    await yan.start("elders; drop table")
    assert "I don't know that consultation" in yan.text


async def test_no_open_consultation(load_consultation, chat) -> None:
    await load_consultation(status="draft")
    zoe: Chat = chat("zoe", "fr")
    await zoe.start()
    assert "Il n'y a aucune consultation ouverte" in zoe.text


async def test_every_proposal_voted_ends_the_sequence_early(load_consultation, chat) -> None:
    await load_consultation(settings={"sequence_size": 10, "summary_min_votes": 1})
    abe: Chat = chat("abe", "en")
    await abe.start()
    await abe.tap("accept")
    await abe.tap("old")
    assert await abe.vote_sequence("agree") == 10
    await abe.tap("vote")
    assert await abe.vote_sequence("agree") == 4  # 14 proposals in English
    await abe.tap("vote")
    assert "You have voted on every proposal available" in abe.text


async def test_after_a_consultation_closes_start_offers_the_open_ones(
    load_consultation, chat
) -> None:
    await load_consultation()
    bea: Chat = chat("bea", "en")
    await bea.start()
    await bea.tap("accept")
    await load_consultation(status="closed")
    await load_consultation(
        slug="transport", question={"fr": "Quels transports ?", "en": "Which transport?"}
    )
    await bea.start()
    assert "Welcome! This consultation asks: Which transport?" in bea.text
