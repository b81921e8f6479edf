"""Slack request bodies validated before bolt sees them, and rebuilt from what was validated.

Bolt and our listeners read bodies with `.get` chains and subscripts, so a well-signed body of
an odd shape (a list for an object, a number for an id) crashed them into a 500, which Slack
delivers again. Here each kind we act on (slash command, DM message, App Home, button tap,
modal submission) is validated strictly on the fields bolt and the listeners read, and bolt is
handed a body holding only those: whatever else the body held never reaches them. A body we
cannot act on is `Ignored` (its kind only: never its content).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from adapters.inbound import MAX_DEPTH, Ignored, invalid_kind, nested_deeper_than

# Slack's ids: workspaces (T...), users (U.../W...), channels (C.../D...), apps, enterprises.
SlackId = Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9._-]{1,64}$")]
Short = Annotated[str, Field(strict=True, max_length=256)]
Ts = Annotated[str, Field(strict=True, max_length=64)]
# Slack's own limits: a message's text 40,000 characters, a slash command's text 4,000,
# a button's value 2,000.
MessageText = Annotated[str, Field(strict=True, max_length=40_000)]
Value = Annotated[str, Field(strict=True, max_length=2000)]


class _Read(BaseModel):
    """The fields we (and bolt) read, typed strictly; other fields are dropped."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class _PassedOn(BaseModel):
    """A part echoed back to Slack as it came (a message's blocks): typed where we read it."""

    model_config = ConfigDict(extra="allow", frozen=True)


class _Authorization(_Read):
    enterprise_id: SlackId | None = None
    team_id: SlackId | None = None
    user_id: SlackId | None = None
    is_bot: StrictBool | None = None
    is_enterprise_install: StrictBool | None = None


class _Workspace(_Read):
    """What bolt reads to find the installation a request is for."""

    api_app_id: SlackId | None = None
    enterprise_id: SlackId | None = None
    is_enterprise_install: StrictBool | None = None
    authorizations: list[_Authorization] | None = None


class SlashCommand(_Read):
    command: Short
    team_id: SlackId
    user_id: SlackId
    trigger_id: Short
    text: Annotated[str, Field(strict=True, max_length=4000)] = ""
    channel_id: SlackId | None = None
    api_app_id: SlackId | None = None
    enterprise_id: SlackId | None = None
    is_enterprise_install: Literal["true", "false"] | None = None
    response_url: Short | None = None


class _Event(_Read):
    type: Short
    user: SlackId | None = None
    channel: SlackId | None = None
    channel_type: Short | None = None
    subtype: Short | None = None
    bot_id: Short | None = None
    text: MessageText | None = None
    tab: Short | None = None
    ts: Ts | None = None
    event_ts: Ts | None = None
    team: SlackId | None = None

    @model_validator(mode="after")
    def _who_and_where(self) -> _Event:
        """A DM from a person and an App Home opened name who (and where) for the listeners."""
        from_person = self.channel_type == "im" and not self.subtype and not self.bot_id
        if self.type == "message" and from_person and (self.user is None or self.channel is None):
            raise ValueError("a direct message needs its user and channel")
        if self.type == "app_home_opened" and self.user is None:
            raise ValueError("an App Home opened needs its user")
        return self


class EventCallback(_Workspace):
    type: Literal["event_callback"]
    team_id: SlackId
    event_id: Short
    event: _Event
    event_time: Annotated[int, Field(strict=True)] | None = None


class UrlVerification(_Read):
    type: Literal["url_verification"]
    challenge: Short


class _Team(_Read):
    id: SlackId
    enterprise_id: SlackId | None = None


class _User(_Read):
    id: SlackId
    team_id: SlackId | None = None


class _Channel(_Read):
    id: SlackId


class _Container(_Read):
    type: Short | None = None
    message_ts: Ts | None = None
    channel_id: SlackId | None = None


class _BlockText(_PassedOn):
    type: Short
    text: MessageText


class _Block(_PassedOn):
    type: Short
    text: _BlockText | None = None


class _Message(_Read):
    ts: Ts | None = None
    text: MessageText | None = None
    blocks: list[_Block] | None = None


class _Option(_Read):
    value: Value


class _Action(_Read):
    action_id: Short
    type: Short | None = None
    block_id: Short | None = None
    value: Value | None = None
    selected_option: _Option | None = None
    action_ts: Ts | None = None


class _Interaction(_Workspace):
    team: _Team | None = None
    enterprise: _Team | None = None
    user: _User
    trigger_id: Short  # Slack sends one with every interaction; the proposal modal needs it
    response_url: Short | None = None

    @model_validator(mode="after")
    def _in_a_workspace(self) -> _Interaction:
        """Every interaction names its workspace (`team`, or the user's `team_id`): the
        participant is keyed by it, and bolt 1.21 fails on a payload that names none."""
        if self.team is None and self.user.team_id is None:
            raise ValueError("an interaction needs its workspace")
        return self


class BlockActions(_Interaction):
    type: Literal["block_actions"]
    container: _Container | None = None
    channel: _Channel | None = None
    message: _Message | None = None
    actions: Annotated[list[_Action], Field(min_length=1)]

    @model_validator(mode="after")
    def _where(self) -> BlockActions:
        """A tap is answered in the conversation it happened in."""
        in_container = self.container is not None and self.container.channel_id is not None
        if not in_container and self.channel is None:
            raise ValueError("a tap needs its channel")
        return self


class _Input(_Read):
    value: MessageText | None = None


class _ProposalBlock(_Read):
    text: _Input | None = None


class _Values(_Read):
    proposal: _ProposalBlock | None = None


class _State(_Read):
    values: _Values | None = None


class _View(_Read):
    id: Short
    type: Short
    callback_id: Short
    hash: Short | None = None
    # Where the modal was opened from: the DM channel we put there, or nothing.
    private_metadata: Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9._-]{0,64}$")] = ""
    state: _State | None = None
    team_id: SlackId | None = None
    app_installed_team_id: SlackId | None = None


class ViewSubmission(_Interaction):
    type: Literal["view_submission"]
    view: _View


_INTERACTIONS: dict[str, type[_Read]] = {
    "block_actions": BlockActions,
    "view_submission": ViewSubmission,
}
_EVENTS: dict[str, type[_Read]] = {
    "event_callback": EventCallback,
    "url_verification": UrlVerification,
}


def validated_body(body: str, content_type: str | None) -> str | Ignored:
    """The body to hand bolt, read as bolt reads it (JSON, a form, or a form's `payload`),
    validated, and written again with only the fields validated; `Ignored` when it is not a
    kind we act on, or not of its kind's shape."""
    form = not (content_type == "application/json" or body.startswith("{"))
    fields = dict(parse_qsl(body, keep_blank_values=True)) if form else {}
    if form and "payload" not in fields:
        return _rebuilt(SlashCommand, fields, "command", form=True)
    text = fields["payload"] if form else body
    if nested_deeper_than(text.encode(), MAX_DEPTH):
        return Ignored(f"nested deeper than {MAX_DEPTH} levels")
    try:
        parsed = json.loads(text)
    except ValueError:  # not JSON, or a number too long for int()
        return Ignored("not a JSON payload")
    kinds = _INTERACTIONS if form else _EVENTS
    kind = parsed.get("type") if isinstance(parsed, dict) else None
    model = kinds.get(kind) if isinstance(kind, str) else None
    if model is None:
        return Ignored("not a kind of payload we act on")
    return _rebuilt(model, parsed, str(kind), form=False, wrapped=form)


def _rebuilt(
    model: type[_Read], data: Any, kind: str, *, form: bool, wrapped: bool = False
) -> str | Ignored:
    try:
        valid = model.model_validate(data)
    except ValidationError as error:
        return Ignored(f"{kind}: {invalid_kind(error)}")
    fields = valid.model_dump(mode="json", by_alias=True, exclude_none=True)
    if form:
        return urlencode(fields)
    text = json.dumps(fields)
    return urlencode({"payload": text}) if wrapped else text
