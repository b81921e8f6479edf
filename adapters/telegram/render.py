"""Core replies as Telegram messages: HTML-escaped text and inline keyboards within limits.

Pure functions, shared by the python-telegram-bot webhook and the aiogram router. Participants'
text is escaped and sent with the HTML parse mode, so a proposal containing `<b>`, `*`, `_` or a
link is shown exactly as its author typed it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from core.messages import Option, Reply

TEXT_LIMIT = 4096  # characters of a message's text, once entities are parsed
CALLBACK_DATA_LIMIT = 64  # bytes of a button's callback data
NARROW_LABEL = 16  # labels up to this length go two per row

Keyboard = tuple[tuple[tuple[str, str], ...], ...]  # rows of (label, callback data)


@dataclass(frozen=True)
class TelegramMessage:
    """One sendMessage call: text in Telegram's HTML, and an inline keyboard if any."""

    html: str
    keyboard: Keyboard = ()


def escape(text: str) -> str:
    """Text shown as typed under parse_mode=HTML (only <, > and & are special there)."""
    return html.escape(text, quote=False)


def keyboard_for(options: tuple[Option, ...]) -> Keyboard:
    """Buttons two per row when every label is short, else one per row.

    Raises ValueError for an option id longer than Telegram's 64-byte callback data: the core's
    ids are short by design, so this is a bug to surface, not an input to trim.
    """
    for option in options:
        if not 0 < len(option.id.encode()) <= CALLBACK_DATA_LIMIT:
            raise ValueError(f"option id {option.id!r} does not fit Telegram's callback data")
    buttons = [(option.label, option.id) for option in options]
    width = 2 if all(len(label) <= NARROW_LABEL for label, _ in buttons) else 1
    return tuple(tuple(buttons[i : i + width]) for i in range(0, len(buttons), width))


def render_reply(reply: Reply) -> list[TelegramMessage]:
    """One reply as one or more messages (text past 4,096 characters is split on lines); the
    keyboard goes with the last part, right under the question it answers."""
    parts = split_text(reply.text)
    keyboard = keyboard_for(reply.pick.options) if reply.pick else ()
    messages = [TelegramMessage(escape(part)) for part in parts]
    messages[-1] = TelegramMessage(messages[-1].html, keyboard)
    return messages


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """`text` in parts of at most `limit` characters once escaped, cut at line ends if possible."""
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True) or [""]:
        while len(escape(line)) > limit:  # a single overlong line: cut it
            head = fitting(line, limit)
            if current:
                parts.append(current)
                current = ""
            parts.append(head)
            line = line[len(head) :]
        if len(escape(current + line)) > limit:
            parts.append(current)
            current = ""
        current += line
    parts.append(current)
    return [part.rstrip("\n") or " " for part in parts]


def answered_card(shown_text: str, label: str) -> str:
    """A tapped message once answered: its text as shown, then the choice, and no buttons.

    `shown_text` is the message's text as Telegram reports it (entities already removed), so it
    is escaped again like any text we send.
    """
    suffix = escape(f"\n\n✓ {label}")
    return escape(fitting(shown_text, TEXT_LIMIT - len(suffix))) + suffix


def continued(recall: str | None, replies: list[Reply]) -> TelegramMessage | None:
    """The tapped message edited into the next question, when the conversation goes on with
    exactly one (the qualification after a vote, the next card after it): the answer just given
    on its first line, then the question and its buttons. None otherwise (a summary and a menu,
    a prompt for text), or when that is more than one message holds.

    A vote then costs one call to Telegram, not two, and Telegram's 30 messages a second make
    twice as many votes.
    """
    if recall is None or len(replies) != 1 or replies[0].pick is None:
        return None
    text = escape(f"{recall}\n\n{replies[0].text}")
    if len(text) > TEXT_LIMIT:
        return None
    return TelegramMessage(text, keyboard_for(replies[0].pick.options))


def fitting(text: str, limit: int) -> str:
    """The longest start of `text` whose escaped form has at most `limit` characters."""
    cut = min(len(text), limit)
    while len(escape(text[:cut])) > limit:
        cut -= 1
    return text[:cut]
