"""WhatsApp Cloud API webhook deliveries: their signature, and the core events inside them.

Meta signs each delivery with the app secret (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of
the raw body>`). A delivery holds `entry[].changes[].value` objects carrying `messages` (what
participants sent), `statuses` (delivery receipts of what we sent, never messages) and
`metadata.phone_number_id` (the business number that received them, the one to answer from).
Payload reference: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.inbound import Ignored, invalid_kind
from core.messages import Choice, Command, Event, Start, Text, parse_command

CHANNEL = "whatsapp"
SIGNATURE_PREFIX = "sha256="
# The text a wa.me deep link pre-fills: "start <payload>", payload as in Telegram's /start.
START_TEXT = re.compile(r"^\s*start\s+([A-Za-z0-9_-]{1,64})\s*$", re.IGNORECASE)


def signature_of(body: bytes, app_secret: str) -> str:
    """The `X-Hub-Signature-256` header value Meta sends with `body`."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signature_matches(body: bytes, header: str, app_secret: str) -> bool:
    """Whether `header` signs `body` with `app_secret` (compared in constant time)."""
    return hmac.compare_digest(signature_of(body, app_secret).encode(), header.strip().encode())


@dataclass(frozen=True)
class Inbound:
    """One participant message: the core event, and where and when it was written.

    `phone_number_id` is the business number to answer from; `written_at` opens WhatsApp's
    24-hour window for free-form replies.
    """

    event: Event
    phone_number_id: str
    written_at: datetime


@dataclass
class Delivery:
    """What a webhook delivery contained; anything unknown is counted, never guessed at.

    `unsupported` counts the message items we do not act on, among them the `invalid` ones,
    whose faults (field path and error type) are listed.
    """

    messages: list[Inbound] = field(default_factory=list)
    statuses: int = 0
    unsupported: int = 0
    invalid: list[str] = field(default_factory=list)


# The fields we read, typed strictly; every other field is ignored, whatever it holds.
Short = Annotated[str, Field(strict=True, min_length=1, max_length=256)]
# A WhatsApp id is the sender's phone number in international form: at most 15 digits (E.164).
WaId = Annotated[str, Field(strict=True, pattern=r"^[0-9]{1,20}$")]
# A Graph API object id (a business number's `phone_number_id`): digits in practice; bounded so
# that an address naming it fits the address column (255 characters).
GraphId = Annotated[str, Field(strict=True, min_length=1, max_length=64)]
# Seconds since 1970, as a string; 11 digits reach year 5138, well inside what datetime holds.
Timestamp = Annotated[str, Field(strict=True, pattern=r"^[0-9]{1,11}$")]
# A text message's body: no length of ours here (the request's size limit bounds it), so that
# an overlong proposal reaches the core, which says in the participant's language what fits.
Body = Annotated[str, Field(strict=True)]


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _TextContent(_Read):
    body: Body


class _ReplyContent(_Read):
    id: Short


class _Interactive(_Read):
    type: Short
    button_reply: _ReplyContent | None = None
    list_reply: _ReplyContent | None = None


class _Button(_Read):
    payload: Short


class WhatsAppMessage(_Read):
    """One `messages[]` item, as far as we read it."""

    sender: WaId = Field(alias="from")
    id: Short
    type: Short
    timestamp: Timestamp | None = None
    text: _TextContent | None = None
    interactive: _Interactive | None = None
    button: _Button | None = None


class _Metadata(_Read):
    phone_number_id: GraphId


class _Value(_Read):
    metadata: _Metadata | None = None
    # Items are validated one by one: one odd message does not hide the others.
    messages: list[Any] = []
    statuses: list[Any] = []


class _Change(_Read):
    field: Short
    value: _Value | None = None


class _Entry(_Read):
    changes: list[_Change] = []


class _Envelope(_Read):
    object: Short
    entry: list[_Entry] = []


def parse_delivery(payload: dict[str, Any]) -> Delivery | Ignored:
    """The participant messages of a delivery; other objects and kinds are skipped, message
    items of another shape counted; `Ignored` when the delivery itself has another shape."""
    try:
        envelope = _Envelope.model_validate(payload)
    except ValidationError as error:
        return Ignored(invalid_kind(error))
    delivery = Delivery()
    if envelope.object != "whatsapp_business_account":
        return delivery
    for change in (change for entry in envelope.entry for change in entry.changes):
        value = change.value
        if change.field != "messages" or value is None:
            continue
        delivery.statuses += len(value.statuses)
        number = value.metadata.phone_number_id if value.metadata is not None else None
        for item in value.messages:
            try:
                message = WhatsAppMessage.model_validate(item)
            except ValidationError as error:
                delivery.unsupported += 1
                delivery.invalid.append("messages[]." + invalid_kind(error))
                continue
            event = None if number is None else event_of(message, number)
            if event is None or number is None:  # nothing to act on, or no number to answer from
                delivery.unsupported += 1
                continue
            delivery.messages.append(Inbound(event, number, _written_at(message)))
    return delivery


# Messages the conversation cannot read but must answer (it asks its question again), as it
# does a sticker on Telegram. Reactions and system notices are not addressed to anyone.
UNREADABLE = frozenset({"image", "sticker", "audio", "video", "document", "location", "contacts"})


def event_key(wamid: str) -> str:
    """The idempotency key of a message: a digest of its id, because a `wamid` encodes the
    sender's phone number, and processed-event keys outlive /forget (and reach the logs)."""
    return "m:" + hashlib.sha256(wamid.encode()).hexdigest()


def address_of(phone_number_id: str, wa_id: str) -> str:
    """Where a participant is answered after a crash: "{business number id}:{their number}",
    since an app may have several numbers and must answer from the one they wrote to."""
    return f"{phone_number_id}:{wa_id}"


def recipient_of(address: str) -> tuple[str | None, str]:
    """The business number id (None in an address kept before addresses named it: their
    number alone) and the participant's number of an `address_of`."""
    business, _, wa_id = address.rpartition(":")  # a number has no colon; an id may
    return business or None, wa_id


def event_of(message: WhatsAppMessage, phone_number_id: str) -> Event | None:
    """The core event of one `messages[]` item received by the business number
    `phone_number_id`: an unreadable kind (an image, a voice note...) is empty text, which the
    conversation answers; None for reactions, system notices and items missing what their kind
    needs."""
    sender = message.sender
    # WhatsApp tells nothing about the reader's language (a country code is not a language).
    common: dict[str, Any] = {
        "channel": CHANNEL,
        "user_id": sender,
        "key": event_key(message.id),
        "address": address_of(phone_number_id, sender),
    }
    kind = message.type
    if kind == "text":
        return None if message.text is None else _text_event(message.text.body, common)
    interactive = message.interactive
    if kind == "interactive" and interactive is not None:
        reply = {"button_reply": interactive.button_reply, "list_reply": interactive.list_reply}
        chosen = reply.get(interactive.type)
        if chosen is None:
            return None
        # A broadcast's button (`start <payload>`) starts the consultation again, as its link.
        started = START_TEXT.match(chosen.id)
        if started:
            return Start(payload=started.group(1), **common)
        return Choice(option=chosen.id, **common)
    if kind == "button":  # a quick-reply button of a template message
        button = message.button
        return None if button is None else Choice(option=button.payload, **common)
    if kind in UNREADABLE:
        return Text(text="", **common)
    return None


def _text_event(body: str, common: dict[str, Any]) -> Event:
    started = START_TEXT.match(body)
    if started:
        return Start(payload=started.group(1), **common)
    command = parse_command(body)
    if command is not None:
        return Command(name=command[0], argument=command[1], **common)
    return Text(text=body, **common)


def _written_at(message: WhatsAppMessage) -> datetime:
    stamp = message.timestamp
    return datetime.now(UTC) if stamp is None else datetime.fromtimestamp(int(stamp), UTC)
