"""Commands typed anywhere in the conversation."""

from __future__ import annotations

from sqlmodel import func, select

from core.models import ChannelIdentity, Participant, Participation, Vote
from tests.support import Chat


async def _voting(chat_factory, user: str, hint: str) -> Chat:
    participant: Chat = chat_factory(user, hint)
    await participant.start("elders__radio")
    await participant.tap("accept")
    await participant.tap("young")
    return participant


async def test_help_explains_then_repeats_the_pending_question(load_consultation, chat) -> None:
    await load_consultation()
    lea = await _voting(chat, "lea", "fr")
    card = lea.last.card
    await lea.command("help")
    assert "/propose" in lea.text and "/forget" in lea.text
    assert lea.last.card == card
    assert lea.options == ["agree", "disagree", "neutral", "skip"]


async def test_language_can_be_changed_mid_sequence(load_consultation, chat) -> None:
    await load_consultation()
    max_: Chat = await _voting(chat, "max", "fr")
    card = max_.last.card
    await max_.command("language")
    assert max_.options == ["fr", "en"]
    assert [o.label for o in max_.last.pick.options] == ["Français", "English"]
    await max_.tap("en")
    assert "Language changed to English" in max_.text
    assert max_.last.card == card
    assert max_.last.text.startswith("Proposal 1/4")


async def test_language_is_asked_when_the_channel_gives_no_usable_hint(
    load_consultation, chat
) -> None:
    await load_consultation()
    nina: Chat = chat("nina", "de-DE")
    await nina.start()
    assert nina.options == ["fr", "en"]
    await nina.type("2")
    assert "Do you agree?" in nina.text


async def test_results_when_published_and_not(load_consultation, chat) -> None:
    await load_consultation()
    olga = await _voting(chat, "olga", "en")
    await olga.vote_sequence("agree")
    await olga.command("results")
    assert "The proposals most agreed on so far" in olga.text
    assert "100% agree" in olga.text
    assert olga.options == ["vote", "propose", "stop"]
    await load_consultation(settings={"sequence_size": 4, "results_published": False})
    await olga.command("results")
    assert "The results are not published yet" in olga.text


async def test_stop_unsubscribes_and_start_comes_back(load_consultation, chat, sessions) -> None:
    await load_consultation()
    paul = await _voting(chat, "paul", "en")
    await paul.command("stop")
    assert "You will no longer receive messages" in paul.text
    async with sessions() as session:
        assert not (await session.exec(select(Participation))).one().subscribed
    await paul.type("hello?")
    assert "Send /start to come back" in paul.text
    await paul.command("start")
    assert "You will receive this consultation's messages again" in paul.text
    async with sessions() as session:
        assert (await session.exec(select(Participation))).one().subscribed


async def test_forget_erases_identity_and_profile_but_keeps_votes_as_counts(
    load_consultation, chat, sessions
) -> None:
    await load_consultation()
    rita = await _voting(chat, "rita", "fr")
    await rita.tap("agree")
    await rita.tap("skip")
    await rita.command("forget")
    assert rita.options == ["yes", "no"]
    await rita.tap("no")
    assert "Rien n'a été effacé" in rita.text
    assert rita.last.card is not None
    await rita.command("forget")
    await rita.tap("yes")
    assert "vos données personnelles ont été effacées" in rita.text
    async with sessions() as session:
        assert (await session.exec(select(func.count()).select_from(ChannelIdentity))).one() == 0
        participation = (await session.exec(select(Participation))).one()
        assert participation.profile == {} and participation.source is None
        participant = (await session.exec(select(Participant))).one()
        assert participant.forgotten_at is not None and participant.locale is None
        assert (await session.exec(select(func.count()).select_from(Vote))).one() == 1
    await rita.start()
    assert "Bienvenue" in rita.text  # a new, unrelated participant
    assert rita.options == ["accept", "decline"]


async def test_cancel_a_proposal_being_written(load_consultation, chat) -> None:
    await load_consultation()
    sam = await _voting(chat, "sam", "en")
    await sam.command("propose")
    await sam.command("cancel")
    assert "Your proposal was not sent" in sam.text
    assert sam.options == ["vote", "propose", "stop"]
    await sam.tap("propose")
    await sam.type("build more benches in parks")
    await sam.tap("edit")
    assert "Complete the sentence" in sam.text
    await sam.type("build more shaded benches in parks")
    await sam.tap("cancel")
    assert "Your proposal was not sent" in sam.text
