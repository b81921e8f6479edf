"""Rendering core replies for WhatsApp (pure functions), against golden JSON.

Set CONSULT_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change, then read
the diff before keeping it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from adapters.whatsapp.render import (
    INTERACTIVE_BODY_MAX,
    TEXT_BODY_MAX,
    render_reply,
    shorten,
    split_text,
)
from bench.fakes.whatsapp_api import problem_with
from core.messages import Option, Pick, Reply

GOLDEN = Path(__file__).parent / "golden"
LIST_BUTTON = "Choose"

CARD = Reply(
    "Proposal 1/4\n\nWe should fund weekly home visits",
    Pick(
        (
            Option("agree.42", "Agree"),
            Option("disagree.42", "Disagree"),
            Option("neutral.42", "Neutral"),
            Option("skip.42", "Skip"),
        )
    ),
    card=42,
)
CASES = {
    "text": Reply("Thank you for taking part! Write to me any time to carry on."),
    "consent_buttons": Reply(
        "We keep your answers anonymous.\n\nDo you agree to take part?",
        Pick((Option("accept", "I agree"), Option("decline", "I decline"))),
    ),
    "vote_card_list": CARD,
    "menu_with_a_long_label_is_a_list": Reply(
        "What would you like to do now?",
        Pick(
            (
                Option("vote", "Vote on more proposals"),
                Option("propose", "Make a proposal"),
                Option("stop", "Stop for now"),
            )
        ),
    ),
    "long_labels_become_descriptions": Reply(
        "Which consultation?",
        Pick(
            (
                Option("c1", "How can we better care for our elders, in town and in the country?"),
                Option("c2", "How can we make culture accessible to everyone?"),
                Option("c3", "Short", "An option with its own description, kept under its title"),
            )
        ),
    ),
    "numbered_past_ten_options": Reply(
        "Which district do you live in?",
        Pick(tuple(Option(f"d{n}", f"District {n}") for n in range(1, 12))),
    ),
    "long_body_goes_first_as_text": Reply(
        ("A long privacy notice. " * 30).strip()
        + "\n\n"
        + ("Second paragraph. " * 20).strip()
        + "\n\nDo you agree to take part?",
        Pick((Option("accept", "I agree"), Option("decline", "I decline"))),
    ),
    "one_huge_paragraph_is_shortened": Reply(
        "word " * 300, Pick((Option("yes", "Yes"), Option("no", "No")))
    ),
    "an_id_too_long_for_a_row_is_numbered": Reply(
        "Pick one", Pick(tuple(Option(f"{n}" * 201, f"Option {n}") for n in range(1, 5)))
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendering_matches_the_golden_file(name: str) -> None:
    rendered = render_reply(CASES[name], LIST_BUTTON)
    golden = GOLDEN / f"{name}.json"
    if os.environ.get("CONSULT_UPDATE_GOLDEN"):
        golden.write_text(json.dumps(rendered, indent=2, ensure_ascii=False) + "\n")
    assert rendered == json.loads(golden.read_text())
    # Whatever we render, the fake Graph API (strict as the real one) accepts it.
    for message in rendered:
        assert problem_with({"messaging_product": "whatsapp", "to": "1", **message}) is None


def test_a_vote_card_is_a_list_whose_rows_carry_the_option_ids() -> None:
    (message,) = render_reply(CARD, LIST_BUTTON)
    interactive = message["interactive"]
    assert interactive["type"] == "list"
    rows = interactive["action"]["sections"][0]["rows"]
    assert [row["id"] for row in rows] == ["agree.42", "disagree.42", "neutral.42", "skip.42"]


def test_a_long_list_button_label_is_shortened() -> None:
    (message,) = render_reply(CARD, "Choisissez votre réponse ici")
    assert len(message["interactive"]["action"]["button"]) <= 20


def test_long_text_is_split_between_paragraphs_within_the_limit() -> None:
    paragraphs = [f"Paragraph {n}. " + "blah " * 300 for n in range(1, 5)]
    messages = render_reply(Reply("\n\n".join(paragraphs)), LIST_BUTTON)
    bodies = [m["text"]["body"] for m in messages]
    assert len(bodies) > 1
    assert all(len(body) <= TEXT_BODY_MAX for body in bodies)
    assert all(body.startswith("Paragraph") for body in bodies)
    assert " ".join(" ".join(bodies).split()) == " ".join(" ".join(paragraphs).split())


def test_splitting_and_shortening_never_exceed_their_limits() -> None:
    unbroken = "x" * 10_000
    assert [len(piece) for piece in split_text(unbroken)] == [4096, 4096, 1808]
    assert len(shorten(unbroken, INTERACTIVE_BODY_MAX)) == INTERACTIVE_BODY_MAX
    assert shorten("We should fund weekly home visits", 20) == "We should fund…"
    assert shorten("short", 20) == "short"
