"""Slack notices: the author's DM gets the decision in their language, over real HTTP to the
fake Web API, with what they typed shown as typed; on both databases."""

from __future__ import annotations

from bench.fakes.slack_api import TEAM, FakeSlack
from bots.notices import NoticeWorker
from core.definitions import settings_of
from core.identity import enrol
from core.moderation import Accept, Actor, Refuse, Source, decide
from core.notices import Handover
from core.proposals import submit_proposal
from tests.adapters.slack.conftest import make_channel
from tests.conftest import SECRET

ANA = Actor("ana@example.org", Source.CLI)


async def test_the_author_is_told_in_their_dm(
    fake_slack: FakeSlack, load_consultation, sessions, clock, flow
) -> None:
    consultation = await load_consultation()
    dm = fake_slack._conversations_open(TEAM, {"users": "U0BRUNO"})["channel"]["id"]
    typed = ["Il faut des <b>bancs</b> & des *fontaines*", "Il faut tout changer"]
    ids = []
    async with sessions() as session, session.begin():
        address = f"{TEAM}:{dm}"
        enrolment = await enrol(session, SECRET, "slack", f"{TEAM}:U0BRUNO", address, clock())
        enrolment.participant.locale = "fr"
        session.add(enrolment.participant)
        assert enrolment.participant.id is not None
        for text in typed:
            proposal = await submit_proposal(
                session,
                enrolment.participant.id,
                consultation.id,
                text,
                "fr",
                settings_of(consultation),
                clock(),
            )
            ids.append(proposal.id)
    for proposal_id, decision in zip(ids, (Accept(), Refuse("several-ideas")), strict=True):
        async with sessions() as session, session.begin():
            await decide(session, proposal_id, decision, ANA, clock())
    channel = make_channel(fake_slack)
    await channel.open(flow)
    try:
        worker = NoticeWorker(sessions, {"slack": channel}, clock=clock)
        assert await worker.drain() == {Handover.SENT: 2}
    finally:
        await channel.close()
    accepted, refused = [message["text"] for message in fake_slack.posted(dm)]
    assert "présentée aux autres participants" in accepted
    assert "&lt;b&gt;bancs&lt;/b&gt; &amp; des" in accepted  # shown as typed, not as markup
    assert "n'a pas été retenue" in refused and "plusieurs idées" in refused
