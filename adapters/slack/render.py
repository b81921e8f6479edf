"""Core replies as Block Kit, within Slack's limits; pure functions, no network.

Text a participant may have written (proposals, and so every card) goes into `plain_text`
objects, which Slack never parses for mentions, links or formatting. The only mrkdwn we send is
the notification fallback `text`, escaped by `escape_mrkdwn`.

Limits relied on (https://api.slack.com/reference/block-kit): 50 blocks per message, 100 per
view; section text 3000 characters; button text 75, value 2000; select option text 75, value
150, 100 options; action ids unique within a message; modal title 24 characters.
"""

from __future__ import annotations

import hashlib
from typing import Any

from core.i18n import Translator
from core.messages import Option, Reply

Block = dict[str, Any]

MAX_BLOCKS = 50
SECTION_TEXT = 3000
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
SELECT_OPTIONS = 100
SELECT_VALUE = 150
MAX_BUTTONS = 5  # more options than this become one static_select (a row of 25 is unreadable)
TITLE_TEXT = 24

CHOICE_ACTION = "choice"  # prefix of every pick's action id: "choice:0", "choice:1", ...
WRITE_PROPOSAL_ACTION = "proposal:write"
PARTICIPATE_ACTION = "participate"
PROPOSAL_FORM = "proposal"
PROPOSAL_BLOCK = "proposal"
PROPOSAL_INPUT = "text"

_ZWJ = "\u200d"


def escape_mrkdwn(text: str) -> str:
    """`text` shown as typed in mrkdwn: no mention, link or formatting can come out of it.

    & < > are escaped as Slack documents (https://api.slack.com/reference/surfaces/formatting
    #escaping); * _ ~ ` get a zero-width joiner before them so they cannot open or close a style.
    """
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for marker in "*_~`":
        escaped = escaped.replace(marker, _ZWJ + marker)
    return escaped


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def text_blocks(text: str) -> list[Block]:
    """`text` as plain-text sections of at most 3000 characters each."""
    text = text or " "  # Slack refuses an empty text object
    return [
        {"type": "section", "text": plain(text[start : start + SECTION_TEXT])}
        for start in range(0, len(text), SECTION_TEXT)
    ]


def question_id(reply: Reply) -> str:
    """The block id of a reply's pick: a digest of its text and options.

    A tapped message is edited into the next question, so one message ts carries question
    after question; the block id tells them apart in a tap's idempotency key, while a double
    tap on one question keeps one key.
    """
    options = "\x1f".join(option.id for option in reply.pick.options) if reply.pick else ""
    digest = hashlib.sha256(f"{reply.text}\x1e{options}".encode()).hexdigest()[:12]
    return f"pick.{digest}"


def pick_block(options: tuple[Option, ...], block_id: str = "pick") -> Block:
    """Buttons for a few options, one static_select for more (value = the option id)."""
    if len(options) <= MAX_BUTTONS:
        buttons = [
            {
                "type": "button",
                "action_id": f"{CHOICE_ACTION}:{index}",
                "text": plain(shorten(option.label, BUTTON_TEXT)),
                "value": option.id[:BUTTON_VALUE],
            }
            for index, option in enumerate(options)
        ]
        return {"type": "actions", "block_id": block_id, "elements": buttons}
    choices = []
    for option in options[:SELECT_OPTIONS]:
        choice: dict[str, Any] = {
            "text": plain(shorten(option.label, BUTTON_TEXT)),
            "value": option.id[:SELECT_VALUE],
        }
        if option.description:
            choice["description"] = plain(shorten(option.description, BUTTON_TEXT))
        choices.append(choice)
    select = {
        "type": "static_select",
        "action_id": f"{CHOICE_ACTION}:select",
        "placeholder": plain("…"),
        "options": choices,
    }
    return {"type": "actions", "block_id": block_id, "elements": [select]}


def render_reply(reply: Reply, *, proposal_button: str | None = None) -> dict[str, Any]:
    """chat.postMessage arguments (text and blocks) for one reply.

    `proposal_button`, when given, is the label of a button opening the proposal modal (for a
    reply with which the core waits for the proposal form).
    """
    blocks = text_blocks(reply.text)[: MAX_BLOCKS - 1]
    if reply.pick is not None and reply.pick.options:
        blocks.append(pick_block(reply.pick.options, question_id(reply)))
    elif proposal_button is not None:
        button = {
            "type": "button",
            "action_id": WRITE_PROPOSAL_ACTION,
            "text": plain(shorten(proposal_button, BUTTON_TEXT)),
            "style": "primary",
        }
        blocks.append({"type": "actions", "block_id": "write", "elements": [button]})
    return {"text": shorten(escape_mrkdwn(reply.text), SECTION_TEXT), "blocks": blocks}


def continued(recall: str, reply: Reply) -> dict[str, Any] | None:
    """chat.update arguments turning a tapped message into `reply`, a question: first the line
    recalling the answer just given ("✓ Agree: We should…"), then the question and its buttons
    as `render_reply` renders them; None if the two do not fit in one message."""
    message = render_reply(reply)
    recalled = {"type": "context", "elements": [plain(shorten(recall, SECTION_TEXT))]}
    blocks = [recalled, *message["blocks"]]
    if len(blocks) > MAX_BLOCKS:
        return None
    text = shorten(escape_mrkdwn(f"{recall}\n\n{reply.text}"), SECTION_TEXT)
    return {"text": text, "blocks": blocks}


def answered_blocks(blocks: list[Block], chosen_label: str | None) -> list[Block]:
    """A message's blocks once answered: its text kept, its buttons gone, the choice shown."""
    kept = [block for block in blocks if block.get("type") != "actions"]
    if chosen_label is not None:
        kept.append({"type": "context", "elements": [plain(f"✓ {chosen_label}")]})
    return kept[:MAX_BLOCKS]


def first_text(blocks: list[Block]) -> str:
    """The text of a message's sections (what a reply said), joined."""
    texts = [b["text"]["text"] for b in blocks if b.get("type") == "section" and "text" in b]
    return "".join(texts)


def proposal_modal(t: Translator, prompt: str, dm_channel: str) -> dict[str, Any]:
    """The "write your proposal" modal: the core's prompt (prefix and limits) and one input.

    `dm_channel` rides in private_metadata so the submission can answer in the DM.
    """
    return {
        "type": "modal",
        "callback_id": PROPOSAL_FORM,
        "private_metadata": dm_channel,
        "title": plain(shorten(t("slack.modal.title"), TITLE_TEXT)),
        "submit": plain(shorten(t("slack.modal.submit"), TITLE_TEXT)),
        "close": plain(shorten(t("slack.modal.close"), TITLE_TEXT)),
        "blocks": [
            *text_blocks(prompt)[:2],
            {
                "type": "input",
                "block_id": PROPOSAL_BLOCK,
                "label": plain(shorten(t("slack.modal.label"), 2000)),
                "element": {
                    "type": "plain_text_input",
                    "action_id": PROPOSAL_INPUT,
                    "multiline": True,
                    "max_length": SECTION_TEXT,
                },
            },
        ],
    }


def participate_button(t: Translator, slug: str) -> Block:
    return {
        "type": "button",
        "action_id": f"{PARTICIPATE_ACTION}:{slug}",
        "text": plain(shorten(t("slack.participate"), BUTTON_TEXT)),
        "value": slug,
        "style": "primary",
    }


def consultation_post(t: Translator, question: str, slug: str) -> dict[str, Any]:
    """The message an organiser posts in a channel: the question and a "Participate" button."""
    blocks = [
        *text_blocks(question)[:3],
        {"type": "actions", "block_id": "participate", "elements": [participate_button(t, slug)]},
    ]
    return {"text": shorten(escape_mrkdwn(question), SECTION_TEXT), "blocks": blocks}


def broadcast_post(text: str, payload: str | None, label: str) -> dict[str, Any]:
    """A broadcast's message as chat.postMessage arguments: its text (shown as typed) and,
    with a deep-link `payload`, a button that starts the consultation it names again (the
    "Participate" action: the participant's sequence resumes)."""
    shown = escape_mrkdwn(text)
    blocks: list[Block] = list(text_blocks(text))
    if payload is not None:
        button = {
            "type": "button",
            "action_id": f"{PARTICIPATE_ACTION}:{payload}",
            "text": plain(shorten(label, BUTTON_TEXT)),
            "value": payload,
            "style": "primary",
        }
        blocks.append({"type": "actions", "elements": [button]})
    return {"text": shorten(shown, SECTION_TEXT), "blocks": blocks}
