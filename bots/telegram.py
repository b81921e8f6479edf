"""Telegram for the server and the `consult telegram ...` commands (link, QR code, webhook)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sqlmodel import select
from telegram.error import TelegramError

from adapters.telegram.links import BadLink, deep_link_payload, telegram_link, write_qr_png
from adapters.telegram.webhook import TelegramChannel, TelegramConfig, bot_for
from bots.bootstrap import runtime
from bots.channels import ChannelNotConfigured
from bots.settings import Settings
from core.i18n import Translator
from core.models import Consultation

USAGE_ERROR = 2
OFFICIAL_API = "https://api.telegram.org"


def telegram_config(settings: Settings) -> TelegramConfig:
    if not settings.telegram_token:
        raise ChannelNotConfigured("cli.telegram_no_token")
    if not settings.telegram_webhook_secret:
        raise ChannelNotConfigured("cli.telegram_no_secret")
    try:
        return TelegramConfig(
            token=settings.telegram_token,
            webhook_secret=settings.telegram_webhook_secret,
            api_url=settings.telegram_api_url,
            messages_per_second=settings.telegram_messages_per_second,
            chat_messages_per_second=settings.telegram_chat_messages_per_second,
            group_messages_per_minute=settings.telegram_group_messages_per_minute,
            max_body_bytes=settings.webhook_max_body_bytes,
            handling_timeout=settings.webhook_handling_timeout,
        )
    except ValueError:
        raise ChannelNotConfigured("cli.telegram_bad_secret") from None


def telegram_channel(settings: Settings) -> TelegramChannel:
    return TelegramChannel(telegram_config(settings))


def add_telegram_commands(commands: Any) -> None:
    telegram = commands.add_parser("telegram", help="the Telegram bot: links, QR codes, webhook")
    actions = telegram.add_subparsers(dest="action", required=True, metavar="ACTION")
    link = actions.add_parser("link", help="print the deep link that opens a consultation")
    link.add_argument("slug", metavar="SLUG")
    link.add_argument("--source", help="a recruitment tag, e.g. newspaper (A-Z a-z 0-9 _ -)")
    link.add_argument("--qr", metavar="FILE", help="also write the link as a QR code (PNG)")
    webhook = actions.add_parser("set-webhook", help="tell Telegram where to deliver updates")
    webhook.add_argument("url", metavar="URL", help="e.g. https://example.org/webhooks/telegram")


async def run_telegram(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    try:
        config = telegram_config(settings)
    except ChannelNotConfigured as problem:
        print(t(problem.msgid, **problem.values), file=sys.stderr)
        return USAGE_ERROR
    if args.action == "link":
        return await _print_link(settings, config, args, t)
    return await _set_webhook(config, args.url, t)


async def _print_link(
    settings: Settings, config: TelegramConfig, args: argparse.Namespace, t: Translator
) -> int:
    try:
        payload = deep_link_payload(args.slug, args.source)
    except BadLink as problem:
        print(t("cli.telegram_bad_link", payload=problem.payload), file=sys.stderr)
        return USAGE_ERROR
    async with runtime(settings) as rt, rt.sessions() as session:
        found = await session.exec(select(Consultation.id).where(Consultation.slug == args.slug))
        if found.first() is None:
            print(t("cli.telegram_unknown_consultation", slug=args.slug), file=sys.stderr)
            return USAGE_ERROR
    username = settings.telegram_bot_username
    if not username:
        async with bot_for(config) as bot:
            try:
                username = (await bot.get_me()).username or ""
            except TelegramError as error:
                print(t("cli.telegram_refused", error=error.message), file=sys.stderr)
                return 1
    url = telegram_link(username, payload)
    print(url)
    if args.qr:
        write_qr_png(url, args.qr)
        print(t("cli.telegram_qr_written", path=args.qr), file=sys.stderr)
    return 0


async def _set_webhook(config: TelegramConfig, url: str, t: Translator) -> int:
    # Telegram only calls HTTPS webhooks; a local Bot API server or a test double may use HTTP.
    secure = url.startswith("https://")
    if not (secure or (url.startswith("http://") and config.api_url.rstrip("/") != OFFICIAL_API)):
        print(t("cli.telegram_webhook_https"), file=sys.stderr)
        return USAGE_ERROR
    async with bot_for(config) as bot:
        try:
            await bot.set_webhook(
                url,
                secret_token=config.webhook_secret,
                allowed_updates=["message", "callback_query"],
            )
        except TelegramError as error:
            print(t("cli.telegram_refused", error=error.message), file=sys.stderr)
            return 1
    print(t("cli.telegram_webhook_set", url=url))
    return 0
