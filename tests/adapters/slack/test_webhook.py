"""The webhook refuses what Slack did not sign (or signed too long ago) before touching
anything, refuses oversized bodies, and answers Slack's URL verification."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk.signature import Clock, SignatureVerifier
from sqlmodel import select

from adapters.slack import EVENTS_PATH, SlackChannel
from bench.fakes import slack_api
from bench.fakes.slack_api import FakeSlack
from core.models import ProcessedEvent
from tests.adapters.slack.conftest import Rig, make_channel, settings_for, start_rig
from tests.conftest import Loader

EXAMPLE = json.loads((Path(__file__).parent / "fixtures" / "signature_example.json").read_text())
FORM = "application/x-www-form-urlencoded"


class FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at


def example_headers(**changes: str) -> dict[str, str]:
    headers = {
        "content-type": FORM,
        "x-slack-request-timestamp": EXAMPLE["timestamp"],
        "x-slack-signature": EXAMPLE["signature"],
    }
    return {**headers, **changes}


def test_slacks_documented_example_is_what_we_compute_and_accept() -> None:
    body = EXAMPLE["body"].encode()
    assert (
        slack_api.signature(EXAMPLE["signing_secret"], EXAMPLE["timestamp"], body)
        == (EXAMPLE["signature"])
    )
    at_that_time = FixedClock(float(EXAMPLE["timestamp"]))
    verifier = SignatureVerifier(EXAMPLE["signing_secret"], at_that_time)
    assert verifier.is_valid_request(body, example_headers())


@pytest.fixture
async def clocked(
    fake_slack: FakeSlack, database_url: str, tmp_path: Path, load_consultation: Loader
) -> AsyncIterator[tuple[Rig, FixedClock]]:
    """A server whose signature clock stands at the documented example's time."""
    await load_consultation()
    clock = FixedClock(float(EXAMPLE["timestamp"]))
    channel: SlackChannel = make_channel(fake_slack, clock=clock, max_body_bytes=4096)
    settings = settings_for(database_url, tmp_path)
    async for rig in start_rig(fake_slack, channel, settings, database_url):
        yield rig, clock


async def processed(rig: Rig) -> list[Any]:
    from core.storage import create_engine, session_factory

    engine = create_engine(rig.database_url)
    try:
        async with session_factory(engine)() as session:
            return list(await session.exec(select(ProcessedEvent)))
    finally:
        await engine.dispose()


async def post(rig: Rig, body: bytes, headers: dict[str, Any]) -> httpx.Response:
    response = await rig.http.post(rig.url + EVENTS_PATH, content=body, headers=headers)
    await rig.drain()
    return response


async def test_the_documented_request_passes_and_forgeries_do_not(
    clocked: tuple[Rig, FixedClock],
) -> None:
    rig, clock = clocked
    body = EXAMPLE["body"].encode()
    # Verified, then handed to bolt: /webhook-collect is not our command, so bolt says 404.
    assert (await post(rig, body, example_headers())).status_code == 404
    calls = len(rig.fake.calls)  # bolt's auth.test, nothing else

    # The same command, ours this time, signed with a wrong secret / tampered / too old.
    ours = body.replace(b"command=%2Fwebhook-collect", b"command=%2Fconsult")
    forged = slack_api.signature("not-the-secret", EXAMPLE["timestamp"], ours)
    assert (
        await post(rig, ours, example_headers(**{"x-slack-signature": forged}))
    ).status_code == 401
    assert (await post(rig, ours, example_headers())).status_code == 401  # body changed
    assert (await post(rig, ours, {"content-type": FORM})).status_code == 401  # unsigned
    odd_time = example_headers(**{"x-slack-request-timestamp": "abc"})
    assert (await post(rig, ours, odd_time)).status_code == 401  # not a number: no 500
    accented: dict[str, Any] = {**example_headers(), "x-slack-signature": "v0=é".encode()}
    assert (await post(rig, ours, accented)).status_code == 401  # not ASCII: no 500
    clock.at += 301  # five minutes and a second later, the genuine example is a replay
    good = slack_api.signature(EXAMPLE["signing_secret"], EXAMPLE["timestamp"], ours)
    assert (
        await post(rig, ours, example_headers(**{"x-slack-signature": good}))
    ).status_code == 401
    assert len(rig.fake.calls) == calls and await processed(rig) == []

    # Within the window, the genuine /consult goes through: the user gets a DM.
    clock.at -= 2
    assert (
        await post(rig, ours, example_headers(**{"x-slack-signature": good}))
    ).status_code == 200
    methods = [c.method for c in rig.fake.calls[calls:]]
    assert methods[:2] == ["conversations.open", "users.info"]
    assert len(await processed(rig)) == 1


async def test_oversized_bodies_are_refused_with_413(clocked: tuple[Rig, FixedClock]) -> None:
    rig, clock = clocked
    body = slack_api.slash_command("U0ALICE", "x" * 5000)
    headers = slack_api.signed(body, FORM, now=clock.at)
    assert (await post(rig, body, headers)).status_code == 413
    assert rig.fake.calls == []


async def test_url_verification_is_answered(clocked: tuple[Rig, FixedClock]) -> None:
    rig, clock = clocked
    body = json.dumps({"token": "x", "challenge": "3eZbrw1aBm2r", "type": "url_verification"})
    headers = slack_api.signed(body.encode(), "application/json", now=clock.at)
    response = await post(rig, body.encode(), headers)
    assert response.status_code == 200 and "3eZbrw1aBm2r" in response.text
