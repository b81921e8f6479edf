"""Telegram updates (in the shape of the Bot API documentation) become core events."""

from __future__ import annotations

from typing import Any

from telegram import Update

from adapters.telegram.updates import Inbound, inbound_from_update
from core.messages import Choice, Command, Start, Text

ALICE = {"id": 111, "is_bot": False, "first_name": "Alice", "language_code": "fr"}
PRIVATE = {"id": 111, "type": "private", "first_name": "Alice"}
GROUP = {"id": -1001, "type": "supergroup", "title": "Neighbours"}


def inbound_from(update: Update) -> Inbound:
    return inbound_from_update(update, bot_id=777)


def message(update_id: int, text: str | None, chat: dict[str, Any] = PRIVATE) -> Update:
    body: dict[str, Any] = {"message_id": 5, "date": 1700000000, "chat": chat, "from": ALICE}
    if text is not None:
        body["text"] = text
    else:
        body["sticker"] = {
            "file_id": "x",
            "file_unique_id": "y",
            "width": 1,
            "height": 1,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        }
    return Update.de_json({"update_id": update_id, "message": body}, None)


def callback(update_id: int, data: str, chat: dict[str, Any] = PRIVATE) -> Update:
    shown = {"message_id": 9, "date": 1700000000, "chat": chat, "text": "Card 1 of 4\n\nWe should"}
    query = {"id": "4382", "from": ALICE, "chat_instance": "-42", "data": data, "message": shown}
    return Update.de_json({"update_id": update_id, "callback_query": query}, None)


def test_start_with_a_deep_link_payload() -> None:
    inbound = inbound_from(message(10, "/start elders__newspaper"))
    assert inbound.event == Start(
        channel="telegram",
        user_id="111",
        key="777:10",
        locale_hint="fr",
        address="111",
        payload="elders__newspaper",
    )
    assert inbound.chat_id == 111 and inbound.tapped is None


def test_a_payload_telegram_would_not_send_is_dropped() -> None:
    event = inbound_from(message(11, "/start ../../etc")).event
    assert isinstance(event, Start) and event.payload == ""


def test_commands_text_and_non_text_messages() -> None:
    assert isinstance(inbound_from(message(12, "/help@consult_bot")).event, Command)
    text = inbound_from(message(13, "We should <b>act</b>")).event
    assert isinstance(text, Text) and text.text == "We should <b>act</b>"
    sticker = inbound_from(message(14, None)).event
    assert isinstance(sticker, Text) and sticker.text == ""


def test_a_tapped_button_is_a_choice_and_a_query_to_answer() -> None:
    inbound = inbound_from(callback(15, "agree.42"))
    assert isinstance(inbound.event, Choice) and inbound.event.option == "agree.42"
    assert inbound.event.key == "777:15"
    assert inbound.tapped is not None
    assert (inbound.tapped.query_id, inbound.tapped.chat_id, inbound.tapped.message_id) == (
        "4382",
        111,
        9,
    )
    assert inbound.tapped.shown_text == "Card 1 of 4\n\nWe should"


def test_groups_edits_and_unknown_updates_reach_nobody() -> None:
    assert inbound_from(message(16, "/start elders", GROUP)).event is None
    tapped_in_group = inbound_from(callback(17, "agree.42", GROUP))
    assert tapped_in_group.event is None and tapped_in_group.tapped is not None  # still answered
    edited = Update.de_json(
        {
            "update_id": 18,
            "edited_message": {
                "message_id": 5,
                "date": 1700000000,
                "edit_date": 1700000001,
                "chat": PRIVATE,
                "from": ALICE,
                "text": "changed",
            },
        },
        None,
    )
    assert inbound_from(edited).event is None
    assert inbound_from(Update.de_json({"update_id": 19, "future": {}}, None)).event is None
