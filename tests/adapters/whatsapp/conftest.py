"""A running app with the WhatsApp channel mounted, talking to a fake Graph API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.whatsapp import WhatsAppChannel
from bench.fakes.whatsapp_api import PHONE_NUMBER_ID, FakeGraphAPI, signed
from bench.processes import serving
from bots.server import create_app
from bots.settings import Settings
from bots.whatsapp import whatsapp_channel

APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
WEBHOOK = "/webhooks/whatsapp"


@dataclass
class Running:
    """The app under uvicorn, its WhatsApp channel, and the fake Graph API behind it."""

    url: str
    channel: WhatsAppChannel
    graph: FakeGraphAPI
    client: httpx.AsyncClient

    async def deliver(self, payload: dict[str, Any], *, drain: bool = True) -> httpx.Response:
        """POST a signed delivery; with `drain`, also wait until its replies are sent."""
        body, headers = signed(payload, APP_SECRET)
        response = await self.client.post(f"{self.url}{WEBHOOK}", content=body, headers=headers)
        if drain:
            await self.channel.drained()
        return response


@pytest.fixture
async def graph() -> AsyncIterator[tuple[FakeGraphAPI, str]]:
    fake = FakeGraphAPI()
    async with serving(fake.app()) as url:
        yield fake, url


@pytest.fixture
def settings(database_url: str, tmp_path: Path, graph: tuple[FakeGraphAPI, str]) -> Settings:
    fake, url = graph
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="whatsapp-test-secret",
        whatsapp_token=fake.token,
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token=VERIFY_TOKEN,
        whatsapp_phone_number_id=PHONE_NUMBER_ID,
        whatsapp_phone_number="+1 555 078 3881",
        whatsapp_api_url=url,
        webhook_max_body_bytes=64 * 1024,
    )


@pytest.fixture
async def running(settings: Settings, graph: tuple[FakeGraphAPI, str]) -> AsyncIterator[Running]:
    # Pacing per recipient is lifted so that a conversation played by a test runs at full speed.
    channel = whatsapp_channel(
        settings, recipient_messages_per_second=1000.0, recipient_burst=1000.0, backoff_seconds=0.05
    )
    async with (
        serving(create_app(settings, channels=[channel])) as url,
        httpx.AsyncClient(timeout=30) as client,
    ):
        yield Running(url, channel, graph[0], client)
