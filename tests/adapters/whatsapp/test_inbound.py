"""Webhook payloads into core events (pure), signatures, and wa.me deep links."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from adapters.whatsapp import parse_delivery, signature_of, whatsapp_link
from adapters.whatsapp.inbound import event_key, recipient_of, signature_matches
from bench.fakes.whatsapp_api import (
    PHONE_NUMBER_ID,
    button_reply,
    delivery,
    list_reply,
    status_update,
    text_message,
)
from core.messages import Choice, Command, Start, Text

WA_ID = "16315551181"
DOCUMENTED_ID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
# The address names the business number written to: an app with several answers from that one.
ADDRESS = f"{PHONE_NUMBER_ID}:{WA_ID}"
SENDER = {"channel": "whatsapp", "user_id": WA_ID, "address": ADDRESS, "locale_hint": None}


def _events(*messages):  # type: ignore[no-untyped-def]
    return [inbound.event for inbound in parse_delivery(delivery(*messages)).messages]


def test_texts_commands_and_deep_link_starts() -> None:
    assert _events(
        text_message(WA_ID, "Il faut plus de bancs", key="wamid.1"),
        text_message(WA_ID, "/forget", key="wamid.2"),
        text_message(WA_ID, "/language en", key="wamid.3"),
        text_message(WA_ID, "START elders__wame", key="wamid.4"),
        text_message(WA_ID, "start", key="wamid.5"),
        text_message(WA_ID, "start elders now", key="wamid.6"),
    ) == [
        Text(key=event_key("wamid.1"), text="Il faut plus de bancs", **SENDER),
        Command(key=event_key("wamid.2"), name="forget", **SENDER),
        Command(key=event_key("wamid.3"), name="language", argument="en", **SENDER),
        Start(key=event_key("wamid.4"), payload="elders__wame", **SENDER),
        Text(key=event_key("wamid.5"), text="start", **SENDER),
        Text(key=event_key("wamid.6"), text="start elders now", **SENDER),
    ]


def test_taps_on_buttons_and_list_rows_are_choices() -> None:
    assert _events(
        button_reply(WA_ID, "accept", "I agree", key="wamid.b"),
        list_reply(WA_ID, "agree.42", "Agree", key="wamid.l"),
    ) == [
        Choice(key=event_key("wamid.b"), option="accept", **SENDER),
        Choice(key=event_key("wamid.l"), option="agree.42", **SENDER),
    ]


def test_where_and_when_a_message_was_written() -> None:
    message = text_message(WA_ID, "bonjour")
    message["timestamp"] = "1772443800"
    (inbound,) = parse_delivery(delivery(message, phone_number_id="777")).messages
    assert inbound.phone_number_id == "777"
    assert inbound.event.address == f"777:{WA_ID}"
    assert recipient_of(inbound.event.address) == ("777", WA_ID)
    assert recipient_of(WA_ID) == (None, WA_ID)  # an address kept before it named the number
    assert inbound.written_at == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def test_statuses_and_unusable_messages_are_counted_not_turned_into_events() -> None:
    reaction = {"from": WA_ID, "id": "wamid.r", "timestamp": "1", "type": "reaction"}
    no_sender = {"id": "wamid.x", "type": "text", "text": {"body": "hi"}}
    bad_text = {"from": WA_ID, "id": "wamid.y", "type": "text", "text": "hi"}
    parsed = parse_delivery(
        delivery(reaction, no_sender, bad_text, statuses=(status_update(WA_ID),))
    )
    assert parsed.messages == [] and parsed.statuses == 1 and parsed.unsupported == 3


def test_an_image_or_a_voice_note_is_empty_text_the_conversation_answers() -> None:
    for kind in ("image", "sticker", "audio"):
        item = {"from": WA_ID, "id": f"wamid.{kind}", "timestamp": "1", "type": kind, kind: {}}
        (inbound,) = parse_delivery(delivery(item)).messages
        assert inbound.event == Text(
            channel="whatsapp",
            user_id=WA_ID,
            key=event_key(f"wamid.{kind}"),
            address=ADDRESS,
            text="",
        )
    assert parse_delivery({"object": "instagram", "entry": []}).messages == []


def test_a_recorded_delivery_from_metas_documentation_parses() -> None:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": WA_ID}],
                            "messages": [
                                {
                                    "from": WA_ID,
                                    "id": DOCUMENTED_ID,
                                    "timestamp": "1749416383",
                                    "type": "text",
                                    "text": {"body": "Does it come in another color?"},
                                }
                            ],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }
    (inbound,) = parse_delivery(payload).messages
    # A wamid is base64 of bytes that hold the sender's number: only a digest of it is kept.
    assert b"16503879439" in base64.b64decode(DOCUMENTED_ID.removeprefix("wamid."))
    assert inbound.event.key.startswith("m:") and "wamid" not in inbound.event.key
    assert inbound.event == Text(
        key=event_key(DOCUMENTED_ID),
        text="Does it come in another color?",
        **SENDER,
    )


def test_signatures_are_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"object":"whatsapp_business_account"}'
    header = signature_of(body, "secret")
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert signature_matches(body, header, "secret")
    assert not signature_matches(body + b" ", header, "secret")
    assert not signature_matches(body, header, "other")
    assert not signature_matches(body, "", "secret")


def test_deep_links_prefill_start_and_the_payload() -> None:
    assert whatsapp_link("+1 555-078-3881", "elders__gazette") == (
        "https://wa.me/15550783881?text=start%20elders__gazette"
    )
    assert whatsapp_link("33612345678") == "https://wa.me/33612345678"
    for number, payload in [("123", "elders"), ("+1 555 078 3881", "é"), ("15550783881", "a" * 65)]:
        with pytest.raises(ValueError):
            whatsapp_link(number, payload)
    link_text = "start elders__gazette"
    (event,) = _events(text_message(WA_ID, link_text, key="wamid.link"))
    assert event == Start(key=event_key("wamid.link"), payload="elders__gazette", **SENDER)


def test_an_overlong_text_reaches_the_conversation_which_says_what_fits() -> None:
    """4,096 characters is what a business may send, not what a person may type: the core, not
    the parser, answers an overlong proposal, in the participant's language."""
    long = "Il faut " + "vraiment " * 600
    (event,) = _events(text_message(WA_ID, long, key="wamid.long"))
    assert isinstance(event, Text) and event.text == long
