"""The channels a server runs, chosen by which settings are present."""

from __future__ import annotations

from adapters.channel import WebhookChannel
from bots.settings import Settings


def enabled_channels(settings: Settings) -> list[WebhookChannel]:
    """One channel per platform whose credentials are configured."""
    channels: list[WebhookChannel] = []
    if settings.telegram_token:
        from bots.telegram import telegram_channel

        channels.append(telegram_channel(settings))
    return channels
