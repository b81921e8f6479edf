"""Rendering core replies for Telegram: escaping, keyboards, limits (pure functions)."""

from __future__ import annotations

import pytest

from adapters.telegram.render import (
    TEXT_LIMIT,
    TelegramMessage,
    answered_card,
    escape,
    keyboard_for,
    render_reply,
    split_text,
)
from core.messages import Option, Pick, Reply

CARD = Reply(
    "Card 1 of 12\n\nWe should <b>fund</b> *home* _visits_ & see https://x.org/?a=1&b=2",
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


def test_a_card_is_escaped_html_with_two_buttons_per_row() -> None:
    assert render_reply(CARD) == [
        TelegramMessage(
            "Card 1 of 12\n\nWe should &lt;b&gt;fund&lt;/b&gt; *home* _visits_ &amp; see "
            "https://x.org/?a=1&amp;b=2",
            (
                (("Agree", "agree.42"), ("Disagree", "disagree.42")),
                (("Neutral", "neutral.42"), ("Skip", "skip.42")),
            ),
        )
    ]


def test_long_labels_go_one_per_row() -> None:
    options = (Option("yes", "I agree to take part"), Option("no", "No"))
    assert keyboard_for(options) == ((("I agree to take part", "yes"),), (("No", "no"),))


def test_an_option_id_past_64_bytes_is_a_bug_not_an_input() -> None:
    with pytest.raises(ValueError, match="callback data"):
        keyboard_for((Option("é" * 33, "Too long"),))


def test_long_text_is_split_on_lines_and_the_keyboard_follows_the_last_part() -> None:
    text = "\n".join(f"line {i} " + "&" * 50 for i in range(200))
    messages = render_reply(Reply(text, Pick((Option("ok", "OK"),))))
    assert len(messages) > 1
    assert all(len(m.html) <= TEXT_LIMIT for m in messages)
    assert [m.keyboard for m in messages[:-1]] == [()] * (len(messages) - 1)
    assert messages[-1].keyboard == ((("OK", "ok"),),)
    rejoined = "\n".join(m.html for m in messages)
    assert rejoined == escape(text)


def test_a_single_overlong_line_is_cut_without_breaking_an_entity() -> None:
    parts = split_text("<" * 5000)
    assert [len(escape(p)) <= TEXT_LIMIT for p in parts] == [True] * len(parts)
    assert "".join(parts) == "<" * 5000


def test_an_answered_card_shows_the_choice_and_stays_within_the_limit() -> None:
    assert answered_card("We should <act>", "Agree") == "We should &lt;act&gt;\n\n✓ Agree"
    assert len(answered_card("&" * 5000, "Agree")) <= TEXT_LIMIT
