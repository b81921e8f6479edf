"""Telegram updates as core events.

The event builders take plain values, so that python-telegram-bot's parsed `Update` (our
webhook) and aiogram's (the embeddable router) become exactly the same events. Consultations
happen in private chats: messages from groups and channels are ignored, so that nobody's vote
is ever asked or shown in front of others.

Our webhook validates the few fields it reads (`parse_update`) instead of building PTB's whole
object tree: strict on those, blind to the rest, so that an update of an odd shape is ignored
(and counted) rather than crashing the handler, and Telegram never redelivers it in a loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.inbound import Ignored, invalid_kind
from adapters.links import DEEP_LINK_PAYLOAD
from core.messages import Choice, Command, Event, Start, Text, parse_command

CHANNEL = "telegram"

# Telegram's ids fit in 64 bits (https://core.telegram.org/bots/api#chat): a larger number is
# no id, and would not fit where addresses are stored.
TelegramId = Annotated[int, Field(strict=True, ge=-(2**63), lt=2**63)]
# Telegram's limits: a message holds at most 4,096 characters, callback data 64 bytes.
MessageText = Annotated[str, Field(strict=True, max_length=4096)]
Short = Annotated[str, Field(strict=True, max_length=256)]


class _Read(BaseModel):
    """The fields we read, typed strictly; every other field is ignored, whatever it holds."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class TelegramUser(_Read):
    id: TelegramId
    language_code: Short | None = None


class TelegramChat(_Read):
    id: TelegramId
    type: Short


class TelegramMessage(_Read):
    message_id: TelegramId
    chat: TelegramChat
    from_user: TelegramUser | None = Field(default=None, alias="from")
    text: MessageText | None = None


class TelegramCallbackQuery(_Read):
    id: Short
    from_user: TelegramUser = Field(alias="from")
    message: TelegramMessage | None = None
    data: Short | None = None


class TelegramUpdate(_Read):
    """An update as far as we act on it: a message or a tapped button (others are None)."""

    update_id: TelegramId
    message: TelegramMessage | None = None
    callback_query: TelegramCallbackQuery | None = None


def parse_update(data: dict[str, Any]) -> TelegramUpdate | Ignored:
    """The parts of an update we act on, validated; `Ignored` (with the field at fault) when
    one of them has another shape than the Bot API's."""
    try:
        return TelegramUpdate.model_validate(data)
    except ValidationError as error:
        return Ignored(invalid_kind(error))


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


def inbound_from_update(update: TelegramUpdate, bot_id: int) -> Inbound:
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
            message.text if message is not None else None,
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
