"""The channels a server runs, chosen by which settings are present."""

from __future__ import annotations

from adapters.channel import WebhookChannel
from bots.settings import Settings


def enabled_channels(settings: Settings) -> list[WebhookChannel]:
    """One channel per platform whose credentials are configured.

    Raises ChannelNotConfigured when a channel is half configured (a token without its secret).
    """
    channels: list[WebhookChannel] = []
    if settings.telegram_token:
        from bots.telegram import telegram_channel

        channels.append(telegram_channel(settings))
    if settings.whatsapp_token:
        from bots.whatsapp import whatsapp_channel

        channels.append(whatsapp_channel(settings))
    if settings.slack_bot_token or settings.slack_client_id:
        from bots.slack import slack_channel

        channels.append(slack_channel(settings))
    return channels
