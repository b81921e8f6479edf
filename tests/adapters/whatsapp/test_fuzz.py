"""Malformed WhatsApp deliveries signed with the app secret never get a 5xx, nor write anything.

Deliveries shaped like Meta's, mutated (see tests/fuzzing.py), are signed and posted to the
real app under uvicorn (the `running` fixture), its replies going to the fake Graph API. Meta
delivers again after an error, so one odd delivery answered 500 would come back again and again.
"""

from __future__ import annotations

import copy
import itertools
import logging
from typing import Any

import pytest
from hypothesis import example, given
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from adapters.whatsapp import signature_of
from bench.fakes.whatsapp_api import (
    button_reply,
    delivery,
    list_reply,
    status_update,
    text_message,
)
from tests.adapters.whatsapp.conftest import APP_SECRET, WEBHOOK, Running
from tests.conftest import Loader
from tests.fuzzing import DEEP, FUZZ, HUGE_INT, LONG_TEXT, check_logs, mutated, rows, to_json

WA_ID = "33612345678"
VALID = [
    delivery(text_message(WA_ID, "start elders", key="wamid.start")),
    delivery(text_message(WA_ID, "Des bibliothèques ouvertes le soir", key="wamid.text")),
    delivery(button_reply(WA_ID, "accept", key="wamid.button")),
    delivery(list_reply(WA_ID, "agree.1", key="wamid.list")),
    delivery(
        {"from": WA_ID, "id": "wamid.image", "timestamp": "1", "type": "image", "image": {}},
        statuses=(status_update(WA_ID),),
    ),
]
RECORDED_IDS = {"wamid.start", "wamid.text", "wamid.button", "wamid.list", "wamid.image"}
PRIVATE = [WA_ID, "Kerry", "biblioth"]
_wamids = itertools.count(1)


def _with(*path: str | int, value: Any) -> dict[str, Any]:
    """The text delivery with the value at `path` (below its first message) replaced."""
    payload = copy.deepcopy(VALID[1])
    holder: Any = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return payload


def _renumbered(payload: Any) -> None:
    """Give each recorded message a new id, so that it is a new message, not a duplicate."""
    if isinstance(payload, dict):
        if isinstance(payload.get("id"), str) and payload["id"] in RECORDED_IDS:
            payload["id"] = f"wamid.fuzz{next(_wamids)}"
        payload = list(payload.values())
    for item in payload if isinstance(payload, list) else []:
        _renumbered(item)


@pytest.fixture
async def rig(running: Running, load_consultation: Loader) -> Running:
    await load_consultation()
    return running


@FUZZ
@given(payload=mutated(VALID))
@example(payload=_with("timestamp", value="99999999999999999999"))  # past datetime's years
@example(payload=_with("from", value=LONG_TEXT))  # no address column holds it
@example(payload=_with("text", value=DEEP))  # RecursionError
@example(payload=_with("text", "body", value=HUGE_INT))  # more digits than int() reads
@example(payload=_with("text", "body", value=7))
@example(payload={**VALID[0], "entry": [[VALID[0]["entry"][0]]]})
# A business number id that an address naming it would carry past its column's 255 characters.
@example(payload=delivery(text_message(WA_ID, "hi", key="wamid.text"), phone_number_id="9" * 256))
@example(payload=7)
async def test_a_malformed_delivery_is_never_a_server_error(
    rig: Running,
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
    payload: Any,
) -> None:
    _renumbered(payload)
    caplog.clear()
    caplog.set_level(logging.INFO)
    before, calls = await rows(sessions), len(rig.graph.calls)
    ignored = rig.channel.ignored.total()
    body = to_json(payload).encode()
    signature = signature_of(body, APP_SECRET)
    headers = {"content-type": "application/json", "x-hub-signature-256": signature}

    response = await rig.client.post(f"{rig.url}{WEBHOOK}", content=body, headers=headers)
    await rig.channel.drained()  # its replies are sent

    assert response.status_code in (200, 400), response.text
    newly_ignored = rig.channel.ignored.total() - ignored
    if response.status_code == 400 or newly_ignored:
        assert await rows(sessions) == before
        assert len(rig.graph.calls) == calls
    check_logs(caplog.records, newly_ignored, PRIVATE)
