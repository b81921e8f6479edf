"""A running server (uvicorn + create_app) with the Slack channel, a fake Slack Web API, and a
Slack workspace's people who post signed requests to it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.pacing import Pacer
from adapters.slack import EVENTS_PATH, OAuthApp, SlackChannel
from bench.fakes import slack_api
from bench.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, TEAM, FakeSlack
from bench.processes import serving
from bots.server import create_app
from bots.settings import Settings
from tests.conftest import SECRET, Loader


@dataclass
class Rig:
    """The server, the fake Slack behind it, and helpers to act as Slack's users."""

    url: str
    fake: FakeSlack
    channel: SlackChannel
    http: httpx.AsyncClient
    database_url: str
    dms: dict[str, str] = field(default_factory=dict)

    async def post(
        self, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        signed = slack_api.signed(body, content_type, now=time.time())
        response = await self.http.post(
            self.url + EVENTS_PATH, content=body, headers={**signed, **(headers or {})}
        )
        await self.drain()
        return response

    async def drain(self) -> None:
        """Wait until the channel's work for what it answered is done (bolt answers once our
        listeners returned, so that work has started by then)."""
        await self.channel.drained()

    async def command(self, user: str, text: str = "") -> httpx.Response:
        body = slack_api.slash_command(user, text)
        return await self.post(body, "application/x-www-form-urlencoded")

    def dm(self, user: str) -> str:
        return self.fake._conversations_open(TEAM, {"users": user})["channel"]["id"]

    def messages(self, user: str) -> list[dict[str, Any]]:
        return self.fake.posted(self.dm(user))

    def texts(self, user: str) -> list[str]:
        return [
            b["text"]["text"]
            for m in self.messages(user)
            for b in m["blocks"]
            if b["type"] == "section"
        ]

    def last_with_actions(self, user: str) -> dict[str, Any]:
        found = [m for m in self.messages(user) if any(b["type"] == "actions" for b in m["blocks"])]
        assert found, "no message with buttons"
        return found[-1]

    @staticmethod
    def elements(message: dict[str, Any]) -> list[dict[str, Any]]:
        return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]

    def options(self, user: str) -> list[str]:
        """Option ids (card options by key) of the last message with buttons."""
        values = []
        for element in self.elements(self.last_with_actions(user)):
            if element["type"] == "static_select":
                values += [o["value"] for o in element["options"]]
            elif "value" in element:
                values.append(element["value"])
        return [v.partition(".")[0] for v in values]

    async def tap(
        self, user: str, key: str, message: dict[str, Any] | None = None
    ) -> httpx.Response:
        """Tap the button (or select the item) whose value is `key` or starts with "key."."""
        message = message or self.last_with_actions(user)
        for element in self.elements(message):
            if element["type"] == "static_select":
                for option in element["options"]:
                    if option["value"].partition(".")[0] == key:
                        action = {**element, "selected_option": option}
                        return await self._act(user, message, action)
            elif element.get("value", "").partition(".")[0] == key or element["action_id"] == key:
                return await self._act(user, message, element)
        raise AssertionError(f"no {key!r} among {self.elements(message)}")

    async def _act(
        self, user: str, message: dict[str, Any], element: dict[str, Any]
    ) -> httpx.Response:
        action = {k: v for k, v in element.items() if k not in ("options", "placeholder")}
        body = slack_api.block_action(user, message, self.dm(user), action)
        return await self.post(body, "application/x-www-form-urlencoded")

    async def submit_proposal(self, user: str, text: str) -> httpx.Response:
        view = self.fake.ok_calls("views.open")[-1].answer["view"]
        body = slack_api.view_submission(user, view, text)
        return await self.post(body, "application/x-www-form-urlencoded")

    async def event(
        self, event: dict[str, Any], event_id: str, retry: int | None = None
    ) -> httpx.Response:
        headers = {} if retry is None else {"x-slack-retry-num": str(retry)}
        body = slack_api.event_callback(event, event_id)
        return await self.post(body, "application/json", headers)

    async def vote_sequence(self, user: str, key: str = "agree", qualify: str = "likeIt") -> int:
        """Answer cards until the sequence ends; how many cards were voted."""
        cards = 0
        while key in self.options(user):
            await self.tap(user, key)
            cards += 1
            if qualify in self.options(user):
                await self.tap(user, qualify)
        return cards


def settings_for(database_url: str, tmp_path: Path, **slack: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        data_dir=tmp_path,
        secret_key=SECRET.decode(),
        slack_signing_secret=SIGNING_SECRET,
        **slack,
    )


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(locales={"U0ALICE": "en-US", "U0BRUNO": "fr-FR"})
    async with fake.running():
        yield fake


def make_channel(fake: FakeSlack, oauth: OAuthApp | None = None, **kwargs: Any) -> SlackChannel:
    return SlackChannel(
        signing_secret=SIGNING_SECRET,
        api_url=fake.api_url,
        bot_token=None if oauth else BOT_TOKEN,
        oauth=oauth,
        pacer=Pacer(1000.0, 1000.0),
        **kwargs,
    )


async def start_rig(
    fake: FakeSlack, channel: SlackChannel, settings: Settings, database_url: str
) -> AsyncIterator[Rig]:
    app = create_app(settings, channels=[channel])
    async with (
        serving(app) as url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        yield Rig(url, fake, channel, http, database_url)


@pytest.fixture
async def rig(
    fake_slack: FakeSlack, database_url: str, tmp_path: Path, load_consultation: Loader
) -> AsyncIterator[Rig]:
    await load_consultation()
    settings = settings_for(database_url, tmp_path, slack_bot_token=BOT_TOKEN)
    async for running in start_rig(fake_slack, make_channel(fake_slack), settings, database_url):
        yield running
