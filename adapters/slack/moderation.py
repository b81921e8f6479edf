"""Moderation in a Slack channel: posts as Block Kit messages, taps and `/consult link CODE`.

Pure translations, and one send; the listeners live in `adapters.slack.channel`. A post's buttons
carry the core's data as their value (`m:<proposal>:<verb>`); a tap is answered to the moderator
alone (chat.postEphemeral) and may change the post's buttons (the refusal reasons, say).
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.pacing import Pacer
from adapters.slack import inbound
from adapters.slack.render import escape_mrkdwn
from core.moderation.chat import Tap, link_code_of
from core.moderation.chat_posts import Buttons, OutgoingPost, Posted
from core.notices import Handover

logger = logging.getLogger(__name__)

MODERATE_ACTION = "moderate"  # prefix of a post's buttons' action ids: "moderate:0", ...
SECTION_TEXT = 3000  # characters of a section block's text
BUTTON_TEXT = 75  # characters of a button's label
LINK = "link"  # `/consult link CODE`


def post_message(text: str, buttons: Buttons) -> dict[str, Any]:
    """A post as chat.postMessage/chat.update arguments: its text (shown as typed) and its
    buttons."""
    shown = escape_mrkdwn(text)
    if len(shown) > SECTION_TEXT:
        shown = shown[: SECTION_TEXT - 1] + "…"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": shown}}]
    blocks += actions_blocks(buttons)
    return {"text": shown, "blocks": blocks}


def actions_blocks(buttons: Buttons) -> list[dict[str, Any]]:
    """The buttons of a post as one actions block (none without buttons)."""
    elements = [
        {
            "type": "button",
            "action_id": f"{MODERATE_ACTION}:{index}",
            "text": {"type": "plain_text", "text": button.label[:BUTTON_TEXT]},
            "value": button.data,
        }
        for index, button in enumerate(b for row in buttons for b in row)
    ]
    return [{"type": "actions", "elements": elements}] if elements else []


def with_buttons(blocks: list[dict[str, Any]], buttons: Buttons) -> list[dict[str, Any]]:
    """A message's blocks with its buttons replaced by `buttons`."""
    kept = [block for block in blocks if block.get("type") != "actions"]
    return kept + actions_blocks(buttons)


def tap_of(body: dict[str, Any], action: dict[str, Any]) -> Tap:
    """A tap on a post's button: the member (workspace and user), the channel, its value."""
    team, user = inbound.team_of(body), str(body["user"]["id"])
    channel = (body.get("container") or {}).get("channel_id") or body["channel"]["id"]
    return Tap(inbound.CHANNEL, str(channel), f"{team}:{user}", str(action.get("value") or ""))


def link_code(text: str) -> str | None:
    """The code of `/consult link CODE` ("" when missing); None for another command."""
    word, _, rest = text.strip().partition(" ")
    return link_code_of(rest) if word.casefold() == LINK else None


# What one request to Slack may raise that says what became of the message.
SEND_ERRORS = (SlackApiError, aiohttp.ClientError, TimeoutError)


def handover_after(error: Exception, what: str) -> Handover:
    """What became of a message whose one request to Slack raised `error` (one of SEND_ERRORS,
    after the client waited out the 429s it could): a 429 still, or a connection that never
    opened, is tried again; a 5xx, or a connection dropped once the request may have been
    written, is unknown (never sent twice); any other refusal is for good. `what` names the
    message in the log."""
    if isinstance(error, SlackApiError):
        status = error.response.status_code
        if status == 429:
            return Handover.RETRY
        if status >= 500:
            return Handover.UNKNOWN
        logger.warning("Slack refused %s: %s", what, error.response.get("error"))
        return Handover.REFUSED
    if isinstance(error, aiohttp.ClientConnectorError):
        return Handover.RETRY
    logger.warning("%s may not have reached Slack: %r", what, error)
    return Handover.UNKNOWN


async def post_to_slack(client: AsyncWebClient, pacer: Pacer, post: OutgoingPost) -> Posted:
    """Post in a moderators' channel, or edit the post (`post.message_id`, its ts). `client`
    waits out 429s and retries nothing else: a post whose request may have reached Slack (a
    dropped connection, a 5xx) is unknown, never posted twice."""
    message = post_message(post.text, post.buttons)
    await pacer.wait(post.chat_id)
    try:
        if post.message_id is not None:
            await client.chat_update(channel=post.chat_id, ts=post.message_id, **message)
            return Posted(Handover.SENT, post.message_id)
        response = await client.chat_postMessage(channel=post.chat_id, **message)
    except SEND_ERRORS as error:
        return Posted(handover_after(error, "a moderators' post"))
    return Posted(Handover.SENT, str(response["ts"]))
