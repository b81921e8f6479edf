"""The open consultations a participant takes part in, with their progress, on every backend."""

from __future__ import annotations

from datetime import timedelta

from core.participation import ConsultationEntry, open_consultations_for
from tests.conftest import SECRET
from tests.support import Chat


async def _overview(sessions, clock, user_id: str, hint: str | None):
    async with sessions() as session:
        return await open_consultations_for(session, SECRET, "test", user_id, hint, clock())


async def test_a_person_not_yet_known_sees_the_open_consultations_in_their_language(
    load_consultation, sessions, clock
) -> None:
    await load_consultation()
    await load_consultation(slug="draft", status="draft")
    await load_consultation(slug="closed", status="closed")
    await load_consultation(slug="later", starts_at=(clock() + timedelta(days=1)).isoformat())
    await load_consultation(slug="ended", ends_at=(clock() - timedelta(days=1)).isoformat())
    await load_consultation(
        slug="votes", status="vote-only", question={"fr": "Votez !", "en": "Vote!"}
    )

    chosen, entries = await _overview(sessions, clock, "nobody", "en-GB")

    assert chosen is None
    assert entries == [
        ConsultationEntry("elders", "How can we better care for our elders?", 0, 14),
        ConsultationEntry("votes", "Vote!", 0, 14),
    ]


async def test_a_participant_sees_the_votes_they_gave_in_the_language_they_chose(
    load_consultation, sessions, clock, chat
) -> None:
    await load_consultation()
    await load_consultation(slug="other", question={"fr": "Autre ?", "en": "Other?"})
    alice: Chat = chat("alice", "fr")
    await alice.start("elders")
    await alice.tap("accept")
    await alice.tap("skip")  # the profile question
    await alice.tap("agree")
    await alice.tap("skip")  # the qualification
    await alice.tap("disagree")
    await alice.command("language")
    await alice.tap("en")

    chosen, entries = await _overview(sessions, clock, "alice", "fr")

    assert chosen == "en"
    assert entries == [
        ConsultationEntry("elders", "How can we better care for our elders?", 2, 14),
        ConsultationEntry("other", "Other?", 0, 14),
    ]
