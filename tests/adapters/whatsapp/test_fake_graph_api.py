"""The fake Graph API refuses what the real one refuses, so tests against it mean something."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bench.fakes.whatsapp_api import PHONE_NUMBER_ID, FakeGraphAPI


def _buttons(*titles: str) -> dict[str, Any]:
    buttons = [
        {"type": "reply", "reply": {"id": f"b{n}", "title": t}} for n, t in enumerate(titles)
    ]
    return {"type": "button", "body": {"text": "Pick"}, "action": {"buttons": buttons}}


def _list(rows: list[dict[str, Any]], button: str = "Choose", body: str = "Pick") -> dict[str, Any]:
    action = {"button": button, "sections": [{"rows": rows}]}
    return {"type": "list", "body": {"text": body}, "action": action}


ROW = {"id": "r", "title": "Row"}


@pytest.mark.parametrize(
    "interactive",
    [
        _buttons("a", "b", "c", "d"),
        _buttons("twenty-one characters"),
        _buttons("same", "same"),
        _list([{"id": f"r{n}", "title": "Row"} for n in range(11)]),
        _list([{"id": "r", "title": "x" * 25}]),
        _list([{**ROW, "description": "x" * 73}]),
        _list([ROW], button="x" * 21),
        _list([ROW], body="x" * 1025),
    ],
)
async def test_interactive_messages_past_the_limits_are_refused(
    graph: tuple[FakeGraphAPI, str], interactive: dict[str, Any]
) -> None:
    fake, url = graph
    body = {"messaging_product": "whatsapp", "to": "1", "type": "interactive"}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {fake.token}"}) as client:
        answer = await client.post(
            f"{url}/{PHONE_NUMBER_ID}/messages", json={**body, "interactive": interactive}
        )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == 131009
    assert fake.sent == [] and len(fake.calls) == 1


async def test_a_bad_token_is_refused_and_a_good_message_accepted(
    graph: tuple[FakeGraphAPI, str],
) -> None:
    fake, url = graph
    message = {"messaging_product": "whatsapp", "to": "1", "type": "text", "text": {"body": "hi"}}
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{url}/{PHONE_NUMBER_ID}/messages", json=message)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == 190
        answer = await client.post(
            f"{url}/{PHONE_NUMBER_ID}/messages",
            json=message,
            headers={"Authorization": f"Bearer {fake.token}"},
        )
    assert answer.status_code == 200
    assert answer.json()["messages"][0]["id"].startswith("wamid.")
    assert fake.sent == [message]
