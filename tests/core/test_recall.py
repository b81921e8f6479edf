"""The line that recalls the answer just given, for a channel that edits the tapped message
into the next question ("✓ Agree: We should…")."""

from __future__ import annotations

from core.conversation.turn import RECALL_SUBJECT, recall_line
from core.flow import Flow
from core.messages import Choice, Start
from tests.conftest import Loader


def test_a_recall_quotes_what_was_answered_shortened() -> None:
    assert recall_line("Agree") == "✓ Agree"
    assert recall_line("Agree", "We should  fund\nvisits") == "✓ Agree: We should fund visits"
    long = recall_line("Agree", "We should " + "really " * 20 + "act")
    assert long.endswith("…") and len(long) <= len("✓ Agree: ") + RECALL_SUBJECT


async def test_a_vote_and_its_qualification_are_recalled(
    flow: Flow, load_consultation: Loader
) -> None:
    await load_consultation()
    sender = {"channel": "test", "user_id": "rita", "locale_hint": "en"}
    outcome = await flow.handle(Start(payload="elders", key="r1", **sender))
    assert outcome.recall is None  # nothing chosen
    outcome = await flow.handle(Choice(option="accept", key="r2", **sender))
    assert outcome.recall == "✓ I agree"
    outcome = await flow.handle(Choice(option="skip", key="r3", **sender))
    card = outcome.replies[-1]
    assert card.card is not None and card.pick is not None
    proposal = card.text.split("\n\n", 1)[1]
    agree = next(option for option in card.pick.options if option.id.startswith("agree."))

    voted = await flow.handle(Choice(option=agree.id, key="r4", **sender))
    assert voted.recall == f"✓ {agree.label}: {proposal}"
    qualify = voted.replies[-1].pick
    assert qualify is not None
    realistic = qualify.options[0]
    qualified = await flow.handle(Choice(option=realistic.id, key="r5", **sender))
    assert qualified.recall == f"✓ {agree.label} · {realistic.label}: {proposal}"
    # Past the qualification, a skipped qualification recalls the vote alone.
    card = qualified.replies[-1]
    assert card.pick is not None
    agree = next(option for option in card.pick.options if option.id.startswith("agree."))
    voted = await flow.handle(Choice(option=agree.id, key="r6", **sender))
    assert voted.replies[-1].pick is not None
    skip = next(o for o in voted.replies[-1].pick.options if o.id.startswith("skip"))
    skipped = await flow.handle(Choice(option=skip.id, key="r7", **sender))
    assert skipped.recall == voted.recall
