"""Core replies as WhatsApp Cloud API messages, within the platform's limits.

A pick steps down gracefully (as Bot Framework's ChoiceFactory does): up to 3 short options
become reply buttons, up to 10 an interactive list, more a numbered text the participant
answers by typing the number (the core's `match_option` reads it). The functions here are pure:
they return the `type`-and-content part of a message; the sender adds `messaging_product` and
`to`. Limits are those of https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-messages
"""

from __future__ import annotations

from typing import Any

from core.messages import Option, Pick, Reply

TEXT_BODY_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
LIST_ROWS_MAX = 10
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
LIST_BUTTON_MAX = 20
BUTTON_ID_MAX = 256
ROW_ID_MAX = 200
ELLIPSIS = "…"

Message = dict[str, Any]


def shorten(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else cut at a word boundary and ended with "…"."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    space = cut.rfind(" ")
    # A word boundary close to the limit reads better than a cut word.
    if not text[len(cut)].isspace() and space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-\n") + ELLIPSIS


def split_text(text: str, limit: int = TEXT_BODY_MAX) -> list[str]:
    """`text` in pieces of at most `limit` characters, cut between paragraphs, lines or words."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = max(window.rfind("\n\n"), 0) or max(window.rfind("\n"), 0) or window.rfind(" ")
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def text_messages(text: str) -> list[Message]:
    """Plain text messages, as many as needed to stay within WhatsApp's 4096 characters each."""
    return [{"type": "text", "text": {"body": piece}} for piece in split_text(text)]


def rendering_of(pick: Pick) -> str:
    """How `pick` is shown: "buttons", "list" or "numbered"."""
    options = pick.options
    longest_id = max((len(option.id) for option in options), default=0)
    if (
        len(options) <= BUTTONS_MAX
        and longest_id <= BUTTON_ID_MAX
        and all(len(o.label) <= BUTTON_TITLE_MAX and not o.description for o in options)
    ):
        return "buttons"
    # An id too long for a row would not come back intact from a tap: typed numbers instead.
    return "list" if len(options) <= LIST_ROWS_MAX and longest_id <= ROW_ID_MAX else "numbered"


def render_reply(reply: Reply, list_button: str) -> list[Message]:
    """The messages that show `reply`; `list_button` labels the button that opens a list.

    Text longer than an interactive body (1024 characters) goes first as plain text, cut
    between paragraphs, so that only the last paragraph carries the buttons; a last paragraph
    that is still too long is shortened with an ellipsis.
    """
    if reply.pick is None or not reply.pick.options:
        return text_messages(reply.text)
    how = rendering_of(reply.pick)
    if how == "numbered":
        return text_messages(numbered_text(reply.text, reply.pick.options))
    lead, body = _split_body(reply.text)
    if how == "buttons":
        action: dict[str, Any] = {"buttons": [_button(option) for option in reply.pick.options]}
        interactive: Message = {"type": "button", "body": {"text": body}, "action": action}
    else:
        section = {"rows": [_row(option) for option in reply.pick.options]}
        action = {"button": shorten(list_button, LIST_BUTTON_MAX), "sections": [section]}
        interactive = {"type": "list", "body": {"text": body}, "action": action}
    return [*text_messages(lead), {"type": "interactive", "interactive": interactive}]


def numbered_text(text: str, options: tuple[Option, ...]) -> str:
    """`text` followed by the options numbered from 1, each with its description if any."""
    lines = [text, ""]
    for number, option in enumerate(options, start=1):
        lines.append(f"{number}. {option.label}")
        if option.description:
            lines.append(f"    {option.description}")
    return "\n".join(lines)


def _split_body(text: str) -> tuple[str, str]:
    """(text to send before, interactive body), the body at most 1024 characters."""
    text = text.strip() or ELLIPSIS  # WhatsApp refuses an empty body
    if len(text) <= INTERACTIVE_BODY_MAX:
        return "", text
    paragraphs = text.split("\n\n")
    kept: list[str] = []
    while paragraphs and len("\n\n".join([paragraphs[-1], *kept])) <= INTERACTIVE_BODY_MAX:
        kept.insert(0, paragraphs.pop())
    if not kept:
        kept = [shorten(paragraphs.pop(), INTERACTIVE_BODY_MAX)]
    return "\n\n".join(paragraphs), "\n\n".join(kept)


def _button(option: Option) -> Message:
    return {"type": "reply", "reply": {"id": option.id, "title": option.label}}


def _row(option: Option) -> Message:
    row: Message = {"id": option.id, "title": shorten(option.label, ROW_TITLE_MAX)}
    description = option.description
    if not description and len(option.label) > ROW_TITLE_MAX:
        description = option.label  # the whole label stays readable under its short title
    if description:
        row["description"] = shorten(description, ROW_DESCRIPTION_MAX)
    return row


def broadcast_message(text: str, payload: str | None, label: str) -> Message:
    """A broadcast's text, with a reply button whose id the inbound side reads as a /start
    with `payload` (`start <payload>`, as a wa.me link pre-fills it); plain text without a
    payload or when the text is too long for an interactive message's body."""
    if payload is None or len(text) > INTERACTIVE_BODY_MAX:
        return {"type": "text", "text": {"body": text[:TEXT_BODY_MAX]}}
    button = {
        "type": "reply",
        "reply": {"id": f"start {payload}", "title": shorten(label, BUTTON_TITLE_MAX)},
    }
    interactive = {"type": "button", "body": {"text": text}, "action": {"buttons": [button]}}
    return {"type": "interactive", "interactive": interactive}
