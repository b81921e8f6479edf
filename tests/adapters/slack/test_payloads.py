"""What Slack's adapter hands bolt: only a payload of a kind we act on, of that kind's shape."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from adapters.inbound import Ignored
from adapters.slack.payloads import validated_body
from bench.fakes.slack_api import block_action


def _tap(**changes: object) -> str:
    body = block_action("U1", {"ts": "1.1", "blocks": []}, "D1", {"action_id": "a", "value": "v"})
    payload = json.loads(dict(parse_qsl(body.decode()))["payload"])
    for name, value in changes.items():
        if value is None:
            payload.pop(name)
        else:
            payload[name] = value
    return "payload=" + json.dumps(payload)


def test_a_tap_keeps_its_trigger_and_one_without_is_ignored() -> None:
    kept = validated_body(_tap(), "application/x-www-form-urlencoded")
    assert isinstance(kept, str) and "trigger_id" in kept
    # Slack sends a trigger with every interaction; the proposal form cannot open without it.
    assert isinstance(validated_body(_tap(trigger_id=None), None), Ignored)


def test_an_interaction_without_its_workspace_is_ignored() -> None:
    """The participant is keyed by workspace and user; slack-bolt 1.21 raised (a 500) on a
    payload naming no workspace, before any listener of ours ran."""
    nowhere = _tap(team=None, user={"id": "U1"})
    assert isinstance(validated_body(nowhere, None), Ignored)
    assert isinstance(validated_body(_tap(team=None), None), str)  # the user's team_id is enough
