"""Malformed Slack requests with a valid signature never get a 5xx, nor write anything.

Slash commands, DM messages, App Home events, button taps and modal submissions shaped like
Slack's, mutated (see tests/fuzzing.py), are signed (v0, with a timestamp) and posted to the
real app under uvicorn, slack-bolt routing them to our listeners and a fake Web API behind.
Slack delivers an event again after an error, so one odd event answered 500 would come back.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from adapters.slack import EVENTS_PATH
from adapters.slack.render import PARTICIPATE_ACTION, PROPOSAL_FORM, WRITE_PROPOSAL_ACTION
from bench.fakes import slack_api
from tests.adapters.slack.conftest import Rig
from tests.fuzzing import (
    DEEP,
    FUZZ,
    HUGE_INT,
    LONG_TEXT,
    check_logs,
    mutated,
    rows,
    to_form,
    to_json,
)

ALICE = "U0ALICE"
DM = "D0FUZZ"
CARD = {
    **json.loads((Path(__file__).parent / "fixtures" / "vote_card.json").read_text()),
    "ts": "1700000001.000100",
}
VIEW = {
    "id": "V0FUZZ",
    "type": "modal",
    "callback_id": PROPOSAL_FORM,
    "private_metadata": DM,
    "hash": "1700000002.abc",
}


def _payload(form: bytes) -> dict[str, Any]:
    fields = dict(parse_qsl(form.decode()))
    return json.loads(fields["payload"]) if "payload" in fields else fields


def _tap(action: dict[str, Any]) -> dict[str, Any]:
    return _payload(slack_api.block_action(ALICE, CARD, DM, action))


def _event(event: dict[str, Any], event_id: str) -> dict[str, Any]:
    return json.loads(slack_api.event_callback(event, event_id))


COMMANDS = [
    _payload(slack_api.slash_command(ALICE, "elders")),
    _payload(slack_api.slash_command(ALICE, "help")),
]
INTERACTIONS = [
    _tap(CARD["blocks"][1]["elements"][0]),
    _tap({"type": "button", "action_id": f"{PARTICIPATE_ACTION}:elders", "value": "elders"}),
    _tap({"type": "button", "action_id": WRITE_PROPOSAL_ACTION, "value": "write"}),
    _payload(slack_api.view_submission(ALICE, VIEW, "Des bibliothèques ouvertes le soir")),
]
EVENTS = [
    _event(
        {"type": "message", "channel_type": "im", "channel": DM, "user": ALICE, "text": "hello"},
        "EvFUZZ1",
    ),
    _event({"type": "app_home_opened", "user": ALICE, "tab": "home"}, "EvFUZZ2"),
]
# A request: how it is encoded, and what it carries.
REQUESTS = st.one_of(
    mutated(COMMANDS).map(lambda payload: ("command", payload)),
    mutated(INTERACTIONS).map(lambda payload: ("interaction", payload)),
    mutated(EVENTS).map(lambda payload: ("event", payload)),
)
PRIVATE = [ALICE, DM, "biblioth", "hello"]
_fresh = itertools.count(1)


def _renumbered(payload: Any) -> None:
    """New event, trigger and message ids, so that each request is a new one, not a retry."""
    if isinstance(payload, dict):
        for key in ("event_id", "trigger_id", "message_ts"):
            if isinstance(payload.get(key), str):
                payload[key] = f"{payload[key]}.{next(_fresh)}"
        payload = list(payload.values())
    for item in payload if isinstance(payload, list) else []:
        _renumbered(item)


def _encoded(kind: str, payload: Any) -> tuple[bytes, str]:
    if kind == "command":
        return to_form(payload), "application/x-www-form-urlencoded"
    if kind == "interaction":
        return urlencode(
            {"payload": to_json(payload)}
        ).encode(), "application/x-www-form-urlencoded"
    return to_json(payload).encode(), "application/json"


def _changed(kind: str, payloads: list[dict[str, Any]], index: int, **changes: Any) -> Any:
    payload = copy.deepcopy(payloads[index])
    payload.update(changes)
    return (kind, payload)


def _action(**changes: Any) -> Any:
    tap = copy.deepcopy(INTERACTIONS[0])
    tap["actions"] = [{k: v for k, v in tap["actions"][0].items() if k not in changes}]
    tap["actions"][0].update({k: v for k, v in changes.items() if v is not None})
    return ("interaction", tap)


@FUZZ
@given(sent=REQUESTS)
@example(sent=_action(action_id=None))  # KeyError: 'action_id'
@example(sent=_changed("interaction", INTERACTIONS, 0, user=[{"id": ALICE}]))
@example(sent=_changed("interaction", INTERACTIONS, 0, team=7))
@example(sent=_changed("interaction", INTERACTIONS, 0, container=DEEP))  # RecursionError
@example(sent=_changed("interaction", INTERACTIONS, 3, view=None))
@example(sent=_changed("interaction", INTERACTIONS, 0, message={**CARD, "text": None}))
@example(sent=_changed("event", EVENTS, 0, event={"type": "message", "channel_type": "im"}))
@example(sent=_changed("event", EVENTS, 0, authorizations=7))
@example(sent=_changed("event", EVENTS, 0, event_time=HUGE_INT))
@example(sent=_changed("command", COMMANDS, 0, text=LONG_TEXT))
@example(sent=_changed("command", COMMANDS, 0, user_id=None))
@example(sent=("event", 7))
async def test_a_malformed_request_is_never_a_server_error(
    rig: Rig,
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
    sent: tuple[str, Any],
) -> None:
    kind, payload = sent
    _renumbered(payload)
    caplog.clear()
    caplog.set_level(logging.INFO)
    before, calls, ignored = await rows(sessions), len(rig.fake.calls), rig.channel.ignored.total()
    body, content_type = _encoded(kind, payload)
    headers = slack_api.signed(body, content_type, now=time.time())

    response = await rig.http.post(rig.url + EVENTS_PATH, content=body, headers=headers)
    await rig.channel.drained()  # the listeners' work, started before the answer, is done

    # 404: bolt's answer to a well-formed request no listener of ours takes.
    assert response.status_code in (200, 400, 404), response.text
    newly_ignored = rig.channel.ignored.total() - ignored
    if response.status_code != 200 or newly_ignored:
        assert await rows(sessions) == before
        # bolt checks its token (auth.test) on its first request, whatever comes of it
        assert {call.method for call in rig.fake.calls[calls:]} <= {"auth.test"}
    check_logs(caplog.records, newly_ignored, PRIVATE)
