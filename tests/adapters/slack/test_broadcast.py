"""A broadcast to the members of a Slack channel, through slack_sdk and the fake Web API, on
both databases: planned by the core, its recipients listed from the platform (paginated, no
bot, no deactivated account, not the app), each member DMed once at the paced rate (counted
from the pacing's waits in virtual time, never waited), with a button that starts the
consultation again; a member gone from the workspace is unreachable; a throttled post is tried
again in a turn of the caller's pace."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.pacing import paced_by
from adapters.slack import SlackChannel
from adapters.slack.channel import PacedRateLimitRetry
from bench.fakes.slack_api import BOT_TOKEN, BOT_USER, FakeSlack
from bots.bootstrap import Runtime
from bots.broadcast_worker import HEADROOM, BroadcastWorker, resolve_outside
from core.broadcasts.messages import parse_message
from core.broadcasts.planning import create_broadcast, plan_due
from core.notices import Handover
from tests.adapters.slack.conftest import make_channel, settings_for
from tests.bots.broadcasting import VirtualTime, states

MEMBERS = [f"U0M{i:03d}" for i in range(12)]
RATE = 2.0  # messages a second in the workspace, for this test


def never(expression: str, after, zone: str):  # a broadcast sent once
    return None


@pytest.fixture
async def slack(fake_slack: FakeSlack, flow) -> AsyncIterator[SlackChannel]:
    for user in MEMBERS:
        fake_slack.users[user] = {"id": user, "locale": "en-US"}
    fake_slack.users["U0ROBOT"] = {"id": "U0ROBOT", "is_bot": True}
    fake_slack.users["U0LEFT"] = {"id": "U0LEFT", "deleted": True}
    fake_slack.users[BOT_USER] = {"id": BOT_USER}
    everyone = [*MEMBERS, "U0ROBOT", "U0LEFT", BOT_USER]
    fake_slack.channel_members["C0STAFF"] = everyone
    channel = make_channel(fake_slack)
    await channel.open(flow)
    yield channel
    await channel.close()


async def test_channel_members_get_a_dm_each_at_the_paced_rate(
    load_consultation, sessions, clock, slack, fake_slack
) -> None:
    consultation = await load_consultation()
    content = parse_message(
        {"text": {"fr": "Votez !", "en": "Vote!"}, "button": True}, consultation
    )
    async with sessions() as session, session.begin():
        broadcast = await create_broadcast(
            session, consultation, content, "slack:channel:C0STAFF", clock(), None, never,
            "ana@example.org", clock(),
        )  # fmt: skip
        (run,) = await plan_due(session, clock(), never)
    assert run.outside is not None and run.queued == 0
    assert await resolve_outside(sessions, {"slack": slack}, run, clock()) == len(MEMBERS)
    fake_slack.gone.add(MEMBERS[-1])  # left the company since
    time = VirtualTime()
    worker = BroadcastWorker(
        sessions,
        {"slack": slack},
        clock=clock,
        rates={"slack": RATE},
        monotonic=time,
        sleep=time.sleep,
    )
    worker.batch = 5  # pages of the listing and batches of sending differ: neither matters
    assert await worker.drain() == {Handover.SENT: 11, Handover.UNREACHABLE: 1}
    posted = [call.args["channel"] for call in fake_slack.ok_calls("chat.postMessage")]
    assert sorted(posted) == sorted(MEMBERS[:-1])  # once each, none to a bot or a leaver
    assert [s for s, _ in await states(sessions, broadcast.id)][-1] == "failed"
    # The pace: evenly, a little under RATE, batch after batch.
    assert time.now - 1000.0 == pytest.approx((len(MEMBERS) - 1) / (RATE * HEADROOM))
    message = fake_slack.ok_calls("chat.postMessage")[0].args
    assert "Vote!" in message["text"]
    (action,) = [b for b in _blocks(message) if b["type"] == "actions"]
    assert action["elements"][0]["value"] == "elders"
    assert action["elements"][0]["action_id"] == "participate:elders"


async def test_a_throttled_post_is_tried_again_in_a_turn_of_its_flow(
    fake_slack: FakeSlack,
) -> None:
    fake_slack.rates["chat.postMessage"] = 0  # every post throttled
    fake_slack.retry_after = 0  # slack_sdk still waits up to a second more, at random
    retry = PacedRateLimitRetry(max_retry_count=2)
    client = AsyncWebClient(BOT_TOKEN, base_url=fake_slack.api_url, retry_handlers=[retry])
    turns: list[int] = []

    async def turn() -> None:  # the broadcasts' worker's pace, say
        turns.append(len(fake_slack.calls))

    with paced_by(turn), pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="D0ALICE", text="Vote!")
    assert turns == [1, 2]  # after each 429, before the next try


def _blocks(args: dict) -> list[dict]:
    import json

    blocks = args.get("blocks")
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks or [])


async def test_the_scheduler_finds_the_workspace_members_from_the_settings(
    load_consultation, sessions, engine, flow, clock, fake_slack, database_url, tmp_path
) -> None:
    for user in MEMBERS[:3]:
        fake_slack.users[user] = {"id": user, "locale": "fr-FR"}
    fake_slack.users[BOT_USER] = {"id": BOT_USER}
    consultation = await load_consultation()
    content = parse_message({"text": {"fr": "Votez !"}}, consultation)
    async with sessions() as session, session.begin():
        await create_broadcast(
            session, consultation, content, "slack:members", clock(), None, never, "ana", clock()
        )
        (run,) = await plan_due(session, clock(), never)
    settings = settings_for(
        database_url, tmp_path, slack_bot_token=BOT_TOKEN, slack_api_url=fake_slack.api_url
    )
    # As the scheduler calls it: no opened channel, the Slack app built from the settings.
    assert await resolve_outside(Runtime(engine, sessions, flow), settings, run) == 3
