"""Installing the app in another workspace through OAuth (installation kept in our database),
and Slack's 429s waited out by slack_sdk's rate-limit retry handler."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.slack import OAuthApp
from bench.fakes import slack_api
from bench.fakes.slack_api import FakeSlack
from core.storage import create_engine
from tests.adapters.slack.conftest import Rig, make_channel, settings_for, start_rig
from tests.conftest import Loader

ACME = "T0ACME"


@pytest.fixture
async def multi(
    fake_slack: FakeSlack, database_url: str, tmp_path: Path, load_consultation: Loader
) -> AsyncIterator[Rig]:
    await load_consultation()
    oauth = OAuthApp(fake_slack.client_id, fake_slack.client_secret)
    settings = settings_for(
        database_url,
        tmp_path,
        slack_client_id=oauth.client_id,
        slack_client_secret=oauth.client_secret,
    )
    async for rig in start_rig(fake_slack, make_channel(fake_slack, oauth), settings, database_url):
        yield rig


async def rows(database_url: str, query: str) -> list[tuple[object, ...]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in await connection.execute(text(query))]
    finally:
        await engine.dispose()


# slack_sdk 3.48 builds aiohttp.BasicAuth for oauth.v2.access, which aiohttp 3.13 deprecates.
@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")
async def test_an_install_stores_the_workspace_and_its_people_can_take_part(multi: Rig) -> None:
    page = await multi.http.get(multi.url + "/slack/install")
    assert page.status_code == 200
    state = re.search(r"state=([\w-]+)", page.text)
    assert state is not None and "client_id=1111.2222" in page.text
    assert state.group(1) in page.headers["set-cookie"]

    multi.fake.codes["code-42"] = ACME  # what Slack hands over once the admin approves
    redirect = await multi.http.get(
        multi.url + "/slack/oauth_redirect",
        params={"code": "code-42", "state": state.group(1)},
        headers={"cookie": f"slack-app-oauth-state={state.group(1)}"},
    )
    assert redirect.status_code == 200, redirect.text
    assert [c.method for c in multi.fake.ok_calls("oauth.v2.access")] == ["oauth.v2.access"]
    bots = await rows(multi.database_url, "SELECT team_id, bot_token FROM slack_bots")
    assert [(team, str(token).startswith(f"xoxb-{ACME}-")) for team, token in bots] == [
        (ACME, True)
    ]
    assert await rows(multi.database_url, "SELECT state FROM slack_oauth_states") == []

    # Someone in the new workspace runs /consult: answered with that workspace's token.
    body = slack_api.slash_command("U0CAROL", "elders", team=ACME)
    assert (await multi.post(body, "application/x-www-form-urlencoded")).status_code == 200
    sent = multi.fake.ok_calls("chat.postMessage")
    assert sent and "Comment mieux prendre soin de nos aînés ?" in str(sent[0].args)
    ts = await multi.channel.post_consultation("C0ACME", "elders", team_id=ACME)
    assert ("C0ACME", ts) in multi.fake.messages
    assert multi.fake.errors == []


async def test_a_replayed_or_forged_state_installs_nothing(multi: Rig) -> None:
    multi.fake.codes["code-43"] = ACME
    redirect = await multi.http.get(
        multi.url + "/slack/oauth_redirect",
        params={"code": "code-43", "state": "made-up"},
        headers={"cookie": "slack-app-oauth-state=made-up"},
    )
    assert redirect.status_code >= 400
    assert multi.fake.ok_calls("oauth.v2.access") == []
    assert await rows(multi.database_url, "SELECT team_id FROM slack_bots") == []


async def test_429s_are_waited_out_and_retried(rig: Rig) -> None:
    rig.fake.rates["chat.postMessage"] = 1  # per second: the consent prompt comes too soon
    await rig.command("U0ALICE", "elders")
    limited = [c for c in rig.fake.calls if c.status == 429]
    assert limited and limited[0].method == "chat.postMessage"
    assert len(rig.fake.ok_calls("chat.postMessage")) == 2  # welcome, then consent
    assert rig.options("U0ALICE") == ["accept", "decline"]
    assert rig.fake.errors == []
