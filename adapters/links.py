"""Deep links into a consultation, shared by the channels: the payload, and a QR code to print.

The payload is the consultation's slug, then `__` and the recruitment source when there is one
(the conversation reads it back); it is 1-64 characters of A-Z a-z 0-9 _ -, the rule of
Telegram's /start payloads, which WhatsApp's pre-filled texts follow too.
"""

from __future__ import annotations

import re
from pathlib import Path

import segno

DEEP_LINK_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")


class BadLink(ValueError):
    """A slug and source that cannot travel in a deep link (`payload` is what they made)."""

    def __init__(self, payload: str) -> None:
        super().__init__(f"{payload!r} cannot be a deep link payload")
        self.payload = payload


def deep_link_payload(slug: str, source: str | None = None) -> str:
    """The payload naming `slug` and `source`; BadLink unless it is 1-64 characters of A-Z a-z
    0-9 _ - (and the source holds no `__`, which separates it from the slug)."""
    payload = f"{slug}__{source}" if source else slug
    if (source and "__" in source) or not DEEP_LINK_PAYLOAD.fullmatch(payload):
        raise BadLink(payload)
    return payload


def write_qr_png(url: str, path: Path) -> None:
    """A QR code of `url` as a PNG large enough to print in a newspaper column."""
    segno.make(url, error="m").save(str(path), kind="png", scale=10, border=4)
