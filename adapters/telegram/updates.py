"""Telegram updates as core events.

The event builders take plain values, so that python-telegram-bot's parsed `Update` (our
webhook) and aiogram's (the embeddable router) become exactly the same events. Consultations
happen in private chats: messages from groups and channels are ignored, so that nobody's vote
is ever asked or shown in front of others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram import Update

from adapters.links import DEEP_LINK_PAYLOAD
from core.messages import Choice, Command, Event, Start, Text, parse_command

CHANNEL = "telegram"


@dataclass(frozen=True)
class TappedMessage:
    """The callback query behind a tapped inline button: to answer, and the message to edit."""

    query_id: str
    chat_id: int | None = None
    message_id: int | None = None
    shown_text: str | None = None


@dataclass(frozen=True)
class Inbound:
    """What one update asks of us: an event for the core (if any), where to reply, and the
    callback query to answer (if any)."""

    event: Event | None
    chat_id: int | None = None
    tapped: TappedMessage | None = None


def update_key(bot_id: int, update_id: int) -> str:
    """The idempotency key of an update: update ids count per bot, and one database may serve
    several bots (our webhook and an aiogram bot embedding consultations, say)."""
    return f"{bot_id}:{update_id}"


def bot_id_of(token: str) -> int:
    """A bot's id, the part of its token before the colon."""
    head, _, _ = token.partition(":")
    return int(head) if head.isdigit() else 0


def message_event(key: str, chat_id: int, user_id: int, language: str | None, text: str) -> Event:
    """A private message: `/start payload`, another command, or text (a non-text message, a
    sticker say, is empty text, which the conversation answers by asking again)."""
    sender: dict[str, Any] = {
        "channel": CHANNEL,
        "user_id": str(user_id),
        "key": key,
        "locale_hint": language,
        "address": str(chat_id),
    }
    command = parse_command(text)
    if command is None:
        return Text(text=text, **sender)
    name, argument = command
    if name == "start":
        payload = argument if DEEP_LINK_PAYLOAD.fullmatch(argument) else ""
        return Start(payload=payload, **sender)
    return Command(name=name, argument=argument, **sender)


def callback_event(key: str, chat_id: int, user_id: int, language: str | None, data: str) -> Choice:
    """A tapped inline button: its callback data is the option id the core offered."""
    return Choice(
        channel=CHANNEL,
        user_id=str(user_id),
        key=key,
        locale_hint=language,
        address=str(chat_id),
        option=data,
    )


def inbound_from_update(update: Update, bot_id: int) -> Inbound:
    """The event in a parsed update; `Inbound(None)` for what the core has no use for (edits,
    group messages, membership changes, update types added to the Bot API later)."""
    key = update_key(bot_id, update.update_id)
    query = update.callback_query
    if query is not None:
        message = query.message
        chat = message.chat if message is not None else None
        tapped = TappedMessage(
            query.id,
            chat.id if chat is not None else None,
            message.message_id if message is not None else None,
            getattr(message, "text", None),
        )
        if chat is None or chat.type != "private" or not query.data:
            return Inbound(None, tapped=tapped)
        choice = callback_event(
            key, chat.id, query.from_user.id, query.from_user.language_code, query.data
        )
        return Inbound(choice, chat.id, tapped)
    message = update.message
    if message is None or message.chat.type != "private" or message.from_user is None:
        return Inbound(None)
    user = message.from_user
    text = message.text or ""
    event = message_event(key, message.chat.id, user.id, user.language_code, text)
    return Inbound(event, message.chat.id)
