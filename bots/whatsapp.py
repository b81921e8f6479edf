"""Building the WhatsApp channel from Settings (`CONSULT_WHATSAPP_*`), and
`consult whatsapp link SLUG`: the wa.me link (and QR code) that opens a consultation."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from adapters.whatsapp import GraphSender, WhatsAppChannel
from adapters.whatsapp.links import whatsapp_link
from bots.errors import ChannelNotConfigured
from bots.links import add_link_command, show_link
from bots.settings import Settings
from core.i18n import Translator


def whatsapp_channel(settings: Settings, **sender_options: Any) -> WhatsAppChannel:
    """The channel for the configured Cloud API app; `sender_options` tune `GraphSender`
    (pacing, retries: tests use them to run faster than the platform allows).

    Raises ChannelNotConfigured naming the missing settings: without the app secret no delivery
    can be trusted, without the verify token Meta cannot subscribe the webhook.
    """
    missing = [
        f"CONSULT_WHATSAPP_{name.upper()}"
        for name in ("token", "app_secret", "verify_token")
        if not getattr(settings, f"whatsapp_{name}")
    ]
    if missing:
        raise ChannelNotConfigured("cli.whatsapp_missing", names=", ".join(missing))
    assert settings.whatsapp_token and settings.whatsapp_app_secret
    assert settings.whatsapp_verify_token
    sender_options.setdefault("messages_per_second", settings.whatsapp_messages_per_second)
    token = settings.whatsapp_token.get_secret_value()
    sender = GraphSender(settings.whatsapp_api_url, token, **sender_options)
    return WhatsAppChannel(
        sender,
        app_secret=settings.whatsapp_app_secret.get_secret_value(),
        verify_token=settings.whatsapp_verify_token.get_secret_value(),
        max_body_bytes=settings.webhook_max_body_bytes,
        phone_number_id=settings.whatsapp_phone_number_id,
        phone_number=settings.whatsapp_phone_number,
    )


def add_whatsapp_commands(commands: Any) -> None:
    whatsapp = commands.add_parser("whatsapp", help="the WhatsApp number: links, QR codes")
    add_link_command(whatsapp.add_subparsers(dest="action", required=True, metavar="ACTION"))


async def run_whatsapp(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    async def make(payload: str) -> str | None:
        try:
            return whatsapp_link(settings.whatsapp_phone_number or "", payload)
        except ValueError:
            print(t("cli.whatsapp_no_number"), file=sys.stderr)
            return None

    return await show_link(settings, args, t, make)
