"""The small language the core speaks: inbound events and outbound replies.

Adapters translate native updates into these events and render these replies within their
channel's limits. Nothing here knows about a particular channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class Event:
    """Something a participant did, as seen by one channel.

    `key` is the idempotency key (Telegram update_id, WhatsApp message id, a line number in a
    terminal session...): the core processes an event with a given (channel, key) at most once.
    `user_id` is the sender's id on that channel; the core stores only a keyed hash of it.
    `address` is where replies can be delivered later (kept only when a channel needs it).
    """

    channel: str
    user_id: str
    key: str
    locale_hint: str | None = None
    address: str | None = None


@dataclass(frozen=True, kw_only=True)
class Start(Event):
    """The participant opened the conversation, possibly through a deep link."""

    payload: str = ""


@dataclass(frozen=True, kw_only=True)
class Resume(Event):
    """Nothing the participant did: their last replies may not have reached them (a worker died
    between the commit and the send), so the conversation asks its current question again."""


@dataclass(frozen=True, kw_only=True)
class Text(Event):
    """Free text typed by the participant (never a command)."""

    text: str


@dataclass(frozen=True, kw_only=True)
class Choice(Event):
    """A tapped button or chosen list item, carrying the option's opaque short id."""

    option: str


@dataclass(frozen=True, kw_only=True)
class Command(Event):
    """A command such as /help, typed or sent by the channel's command mechanism."""

    name: str
    argument: str = ""


@dataclass(frozen=True, kw_only=True)
class FormSubmit(Event):
    """A form (e.g. a Slack modal) submitted with named fields."""

    form: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Option:
    """One choice of a pick: a stable short id, a label, an optional description."""

    id: str
    label: str
    description: str | None = None


@dataclass(frozen=True)
class Pick:
    """ "Pick one of N": rendered as buttons, a list or numbered text per channel."""

    options: tuple[Option, ...]


@dataclass(frozen=True)
class Reply:
    """One message to the participant: text, plus an optional pick.

    `card` names the proposal a vote card is about, so that a channel able to edit messages can
    replace the card's buttons with the participant's choice once they voted.
    `form` names the form the conversation now waits for ("proposal"): a channel with forms
    (Slack's modals) offers it; others let the participant type the text.
    """

    text: str
    pick: Pick | None = None
    card: int | None = None
    form: str | None = None


def parse_command(text: str) -> tuple[str, str] | None:
    """Split "/name argument" typed on a text channel; None if `text` is not a command."""
    stripped = text.strip()
    if not stripped.startswith("/") or len(stripped) < 2:
        return None
    name, _, argument = stripped[1:].partition(" ")
    name = name.split("@", 1)[0].lower()  # Telegram appends @botname in groups
    if not name.isalnum():
        return None
    return name, argument.strip()


def match_option(options: tuple[Option, ...], typed: str) -> Option | None:
    """The option a participant typed on a channel without buttons: its number or its label."""
    answer = typed.strip()
    # isdecimal, not isdigit: "²" is a digit that int() refuses; and no 4,000-digit numbers.
    if answer.isdecimal() and len(answer) <= 6:
        index = int(answer)
        return options[index - 1] if 1 <= index <= len(options) else None
    folded = answer.casefold()
    for option in options:
        if folded in (option.label.casefold(), option.id.casefold()):
            return option
    return None
