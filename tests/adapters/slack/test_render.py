"""Rendering replies as Block Kit and parsing Slack payloads: pure functions, no network."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from adapters.slack import escape_mrkdwn, render_reply
from adapters.slack.inbound import choice_event, chosen_value, message_event, slash_command_event
from adapters.slack.render import answered_blocks, continued, question_id, text_blocks
from bench.fakes.slack_api import MESSAGE_BLOCKS, block_problems
from core.messages import Command, Option, Pick, Reply, Start, Text

FIXTURES = Path(__file__).parent / "fixtures"
CARD = Reply(
    "Proposal 1 of 4\n\nWe should fund weekly home visits",
    Pick(
        (
            Option("agree.7", "Agree"),
            Option("disagree.7", "Disagree"),
            Option("neutral.7", "Neutral"),
            Option("skip.7", "Skip"),
        )
    ),
    card=7,
)


def test_a_vote_card_renders_as_recorded() -> None:
    golden = json.loads((FIXTURES / "vote_card.json").read_text())
    assert render_reply(CARD) == golden


def test_markup_in_mrkdwn_is_shown_as_typed() -> None:
    typed = "<!channel> <@U123> <http://x|y> *b* _i_ ~s~ `c` & co"
    escaped = escape_mrkdwn(typed)
    assert "<" not in escaped and ">" not in escaped
    assert "&lt;!channel&gt;" in escaped and "&amp; co" in escaped
    for marker in "*_~`":
        assert f"\u200d{marker}" in escaped
    assert (
        escaped.replace("\u200d", "")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
        == typed
    )


def test_participant_text_goes_in_plain_text_only() -> None:
    rendered = render_reply(Reply("We should <!here> *now*"))
    assert rendered["blocks"] == [
        {
            "type": "section",
            "text": {"type": "plain_text", "text": "We should <!here> *now*", "emoji": True},
        }
    ]
    assert "<!here>" not in rendered["text"]


def test_many_options_become_one_select_within_limits() -> None:
    options = tuple(Option(f"c{i}", "A very long consultation question " * 5) for i in range(130))
    rendered = render_reply(Reply("Which one?", Pick(options)))
    (select,) = rendered["blocks"][-1]["elements"]
    assert select["type"] == "static_select" and len(select["options"]) == 100
    assert block_problems(rendered["blocks"], MESSAGE_BLOCKS) == []


@given(st.text(max_size=20_000), st.lists(st.text(min_size=1, max_size=200), max_size=8))
def test_any_reply_stays_within_slacks_limits(text: str, labels: list[str]) -> None:
    options = tuple(Option(f"o{i}.{'x' * 40}", label) for i, label in enumerate(labels))
    rendered = render_reply(Reply(text, Pick(options) if options else None))
    assert block_problems(rendered["blocks"], MESSAGE_BLOCKS) == []
    assert "".join(b["text"]["text"] for b in text_blocks(text)) == (text or " ")
    edited = continued(f"✓ {text}", Reply(text, Pick(options) if options else None))
    assert edited is None or block_problems(edited["blocks"], MESSAGE_BLOCKS) == []


def test_an_answered_card_keeps_its_text_and_shows_the_choice() -> None:
    blocks = render_reply(CARD)["blocks"]
    assert answered_blocks(blocks, "Agree") == [
        blocks[0],
        {"type": "context", "elements": [{"type": "plain_text", "text": "✓ Agree", "emoji": True}]},
    ]
    assert answered_blocks(blocks, None) == [blocks[0]]  # a stale tap: just no buttons


def test_consult_words_are_commands_or_slugs() -> None:
    body = {"team_id": "T1", "user_id": "U1", "trigger_id": "1.2.3", "text": ""}
    start = slash_command_event(body, "D1", "fr-FR")
    assert isinstance(start, Start) and start.payload == ""
    assert start.user_id == "T1:U1" and start.address == "T1:D1" and start.key == "cmd:1.2.3"
    assert start.locale_hint == "fr-FR"
    elders = slash_command_event({**body, "text": "elders__intranet"}, "D1", None)
    assert isinstance(elders, Start) and elders.payload == "elders__intranet"
    forget = slash_command_event({**body, "text": "forget"}, "D1", None)
    assert isinstance(forget, Command) and forget.name == "forget"


def test_a_select_carries_its_chosen_option() -> None:
    select = {"action_id": "choice:select", "selected_option": {"value": "c3"}}
    assert chosen_value(select) == "c3"
    assert chosen_value({"action_id": "choice:0", "value": "agree.7"}) == "agree.7"


def test_a_dm_is_read_as_typed_and_select_items_are_distinct_choices() -> None:
    body = {
        "team_id": "T1",
        "event_id": "Ev1",
        "event": {"user": "U1", "channel": "D1", "text": "Parks &amp; gardens &lt;3 &amp;lt;"},
    }
    typed = message_event(body, None)
    assert isinstance(typed, Text) and typed.text == "Parks & gardens <3 &lt;"
    tap = {"user": {"id": "U1"}, "team": {"id": "T1"}, "container": {"message_ts": "1.5"}}
    first = choice_event(
        tap, {"action_id": "choice:select", "selected_option": {"value": "c3"}}, "D1", None
    )
    other = choice_event(
        tap, {"action_id": "choice:select", "selected_option": {"value": "c4"}}, "D1", None
    )
    elsewhere = choice_event(
        tap, {"action_id": "choice:select", "selected_option": {"value": "c3"}}, "D2", None
    )
    assert len({first.key, other.key, elsewhere.key}) == 3
    assert "U1" not in first.key and "D1" not in first.key


def test_a_tapped_message_goes_on_as_the_next_question_within_slacks_limits() -> None:
    edited = continued("✓ Agree: We should <!here> fund visits", CARD)
    assert edited is not None
    assert edited["blocks"][0] == {
        "type": "context",
        "elements": [
            {"type": "plain_text", "text": "✓ Agree: We should <!here> fund visits", "emoji": True}
        ],
    }
    assert edited["blocks"][1:] == render_reply(CARD)["blocks"]
    assert edited["text"].startswith("✓ Agree: We should &lt;!here&gt;")
    long = Reply("x" * 3000 * 49, CARD.pick)  # 49 sections and the buttons: no room for more
    assert continued("✓ Agree", long) is None


def test_each_question_of_an_edited_message_is_its_own_tap() -> None:
    tap = {"user": {"id": "U1"}, "team": {"id": "T1"}, "container": {"message_ts": "1.5"}}
    profile = Reply("Your age?", Pick((Option("young", "Young"), Option("skip", "Skip"))))
    region = Reply("Your region?", Pick((Option("north", "North"), Option("skip", "Skip"))))
    keys = {
        choice_event(
            tap, {"action_id": "choice:1", "value": "skip", "block_id": block}, "D1", None
        ).key
        for block in (question_id(profile), question_id(region), question_id(profile))
    }
    assert len(keys) == 2  # a double tap on one question is one key
