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
from typing import Any

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
    """What a webhook delivery contained; anything unknown is counted, never guessed at."""

    messages: list[Inbound] = field(default_factory=list)
    statuses: int = 0
    unsupported: int = 0


def parse_delivery(payload: dict[str, Any]) -> Delivery:
    """The participant messages of a delivery; other objects and shapes are skipped."""
    delivery = Delivery()
    if payload.get("object") != "whatsapp_business_account":
        return delivery
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                continue
            delivery.statuses += len(_dicts(value.get("statuses")))
            metadata = value.get("metadata")
            number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            for message in _dicts(value.get("messages")):
                event = event_of(message)
                if event is None or not isinstance(number, str):
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


def event_of(message: dict[str, Any]) -> Event | None:
    """The core event of one `messages[]` item: an unreadable kind (an image, a voice note...)
    is empty text, which the conversation answers; None for reactions, system notices and
    malformed items."""
    sender, wamid = message.get("from"), message.get("id")
    if not isinstance(sender, str) or not isinstance(wamid, str) or not sender or not wamid:
        return None
    key = event_key(wamid)
    # WhatsApp tells nothing about the reader's language (a country code is not a language).
    common: dict[str, Any] = {"channel": CHANNEL, "user_id": sender, "key": key, "address": sender}
    kind = message.get("type")
    if kind == "text":
        body = _field(message, "text", "body")
        return None if body is None else _text_event(body, common)
    if kind == "interactive":
        interactive = message.get("interactive")
        reply_kind = interactive.get("type") if isinstance(interactive, dict) else None
        if isinstance(interactive, dict) and reply_kind in ("button_reply", "list_reply"):
            option = _field(interactive, reply_kind, "id")
            return None if option is None else Choice(option=option, **common)
    if kind == "button":  # a quick-reply button of a template message
        payload = _field(message, "button", "payload")
        return None if payload is None else Choice(option=payload, **common)
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


def _written_at(message: dict[str, Any]) -> datetime:
    stamp = message.get("timestamp")
    if isinstance(stamp, str) and stamp.isdigit():
        return datetime.fromtimestamp(int(stamp), UTC)
    return datetime.now(UTC)


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _field(container: dict[str, Any], outer: str, inner: str) -> str | None:
    holder = container.get(outer)
    value = holder.get(inner) if isinstance(holder, dict) else None
    return value if isinstance(value, str) else None
