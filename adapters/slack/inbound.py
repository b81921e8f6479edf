"""Slack payloads as core events: who, what, and the idempotency key; pure functions.

A participant's core user id is "{team_id}:{user_id}", so the keyed hash the core stores is of
(workspace, user): the same person in two workspaces is two participants, and nothing in the
database names the Slack user. Delivery goes to the DM channel ("{team_id}:{dm_channel}").
"""

from __future__ import annotations

import hashlib
from typing import Any

from core.conversation.commands import COMMANDS
from core.messages import Choice, Command, Event, FormSubmit, Start, Text, parse_command

CHANNEL = "slack"


def user_key(team_id: str, user_id: str) -> str:
    return f"{team_id}:{user_id}"


def address(team_id: str, dm_channel: str) -> str:
    return f"{team_id}:{dm_channel}"


def team_of(body: dict[str, Any]) -> str:
    """The workspace a payload comes from (slash commands, events, interactions differ)."""
    team = body.get("team_id") or (body.get("team") or {}).get("id")
    if not team:
        team = (body.get("user") or {}).get("team_id", "")
    return str(team)


def slash_command_event(
    body: dict[str, Any], dm_channel: str, locale: str | None
) -> Start | Command:
    """`/consult` -> Start; `/consult elders` -> Start("elders"); `/consult help` -> /help.

    Keyed by the command's trigger_id, which Slack makes unique per invocation.
    """
    team = team_of(body)
    sender = _sender(team, body["user_id"], f"cmd:{body['trigger_id']}", dm_channel, locale)
    word, _, rest = str(body.get("text", "")).strip().partition(" ")
    name = word.lstrip("/").lower()
    if name in COMMANDS:
        return Command(name=name, argument=rest.strip(), **sender)
    return Start(payload=word, **sender)


def message_event(body: dict[str, Any], locale: str | None) -> Text | Command:
    """A message typed in the DM; keyed by the Events API's event_id (same on retries)."""
    event = body["event"]
    team = team_of(body)
    sender = _sender(team, event["user"], f"ev:{body['event_id']}", event["channel"], locale)
    text = unescape(str(event.get("text", "")))
    parsed = parse_command(text)
    if parsed is not None:
        return Command(name=parsed[0], argument=parsed[1], **sender)
    return Text(text=text, **sender)


def unescape(text: str) -> str:
    """A DM's text as typed: Slack sends &, < and > as &amp;, &lt; and &gt; (&amp; last, so
    that a typed "&lt;" stays "&lt;")."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def chosen_value(action: dict[str, Any]) -> str:
    """The option id a button (its value) or a select (its selected option) carries."""
    selected = action.get("selected_option")
    if selected:
        return str(selected["value"])
    return str(action.get("value", ""))


def choice_event(
    body: dict[str, Any], action: dict[str, Any], dm_channel: str, locale: str | None
) -> Choice:
    """A tapped button or chosen item on a message in the DM.

    Keyed by (workspace, DM, message ts, block id, action id, value): a double tap on one
    question's button counts once, while another item of the same select menu is a new choice.
    A tapped message is edited into the next question, so one ts carries several questions: the
    block id (`render.question_id`) names the one tapped. A message ts is unique only within its
    channel, so the DM is in the key, as a digest: no user or DM id goes into keys, which
    outlive /forget in the processed-events table.
    """
    team = team_of(body)
    container = body.get("container") or {}
    ts = container.get("message_ts") or action.get("action_ts", "")
    where = hashlib.sha256(f"{team}:{dm_channel}".encode()).hexdigest()[:16]
    value = chosen_value(action)
    block = action.get("block_id", "")
    key = f"act:{where}:{ts}:{block}:{action['action_id']}:{value}"[:128]
    sender = _sender(team, body["user"]["id"], key, dm_channel, locale)
    return Choice(option=value, **sender)


def participate_event(
    body: dict[str, Any], action: dict[str, Any], dm_channel: str, locale: str | None
) -> Start:
    """ "Participate" on the App Home or on a channel post: many people tap the same message,
    so the key is the tap's own trigger id."""
    team = team_of(body)
    user = body["user"]["id"]
    key = f"start:{body.get('trigger_id') or action.get('action_ts', '')}"
    return Start(
        payload=str(action.get("value", "")), **_sender(team, user, key, dm_channel, locale)
    )


def proposal_event(body: dict[str, Any], dm_channel: str, locale: str | None) -> FormSubmit:
    """The proposal modal's submission; keyed by the submission's own trigger id."""
    view = body["view"]
    team = team_of(body)
    values = view.get("state", {}).get("values", {})
    text = values.get("proposal", {}).get("text", {}).get("value") or ""
    trigger = body.get("trigger_id") or f"{view['id']}:{view.get('hash', '')}"
    sender = _sender(team, body["user"]["id"], f"view:{trigger}", dm_channel, locale)
    return FormSubmit(form="proposal", fields={"text": str(text)}, **sender)


def _sender(team: str, user: str, key: str, dm_channel: str, locale: str | None) -> dict[str, Any]:
    return {
        "channel": CHANNEL,
        "user_id": user_key(team, user),
        "key": key[:128],
        "locale_hint": locale,
        "address": address(team, dm_channel),
    }


__all__ = [
    "CHANNEL",
    "Event",
    "choice_event",
    "message_event",
    "participate_event",
    "proposal_event",
    "slash_command_event",
]
