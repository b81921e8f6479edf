"""Telegram for the server and the `consult telegram ...` commands (link, QR code, webhook)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from telegram import Bot, User
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError

from adapters.telegram.links import telegram_link
from adapters.telegram.webhook import TelegramChannel, TelegramConfig, bot_for
from bots.errors import ChannelNotConfigured
from bots.links import LinkMaker, add_link_command, show_link
from bots.settings import Settings
from core.i18n import Translator

USAGE_ERROR = 2
OFFICIAL_API = "https://api.telegram.org"
T = TypeVar("T")

# PTB's debug lines quote the bot token (in every API URL) and participants' chat ids (in every
# call's parameters): they stay out of the logs whatever the root logger's level.
logging.getLogger("telegram").setLevel(logging.INFO)


def telegram_config(settings: Settings) -> TelegramConfig:
    if not settings.telegram_token:
        raise ChannelNotConfigured("cli.telegram_no_token")
    if not settings.telegram_webhook_secret:
        raise ChannelNotConfigured("cli.telegram_no_secret")
    try:
        return TelegramConfig(
            token=settings.telegram_token.get_secret_value(),
            webhook_secret=settings.telegram_webhook_secret.get_secret_value(),
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
    add_link_command(actions)
    webhook = actions.add_parser("set-webhook", help="tell Telegram where to deliver updates")
    webhook.add_argument("url", metavar="URL", help="e.g. https://example.org/webhooks/telegram")


async def run_telegram(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    if args.action == "link":
        return await show_link(settings, args, t, _link_maker(settings, t))
    try:
        config = telegram_config(settings)
    except ChannelNotConfigured as problem:
        print(t(problem.msgid, **problem.values), file=sys.stderr)
        return USAGE_ERROR
    return await _set_webhook(config, args.url, t)


def _link_maker(settings: Settings, t: Translator) -> LinkMaker:
    """Links need the bot's username: CONSULT_TELEGRAM_BOT_USERNAME, or else asked of Telegram
    with the token."""

    async def make(payload: str) -> str | None:
        username = settings.telegram_bot_username
        if not username and settings.telegram_token:
            token = settings.telegram_token.get_secret_value()
            me = await _with_bot(token, settings.telegram_api_url, t, _get_me)
            if me is None:
                return None
            username = me.username
        if not username:
            print(t("cli.telegram_no_username"), file=sys.stderr)
            return None
        return telegram_link(username, payload)

    return make


async def _set_webhook(config: TelegramConfig, url: str, t: Translator) -> int:
    # Telegram only calls HTTPS webhooks; a local Bot API server or a test double may use HTTP.
    secure = url.startswith("https://")
    if not (secure or (url.startswith("http://") and config.api_url.rstrip("/") != OFFICIAL_API)):
        print(t("cli.telegram_webhook_https"), file=sys.stderr)
        return USAGE_ERROR

    async def set_webhook(bot: Bot) -> bool:
        return await bot.set_webhook(
            url, secret_token=config.webhook_secret, allowed_updates=["message", "callback_query"]
        )

    if await _with_bot(config.token, config.api_url, t, set_webhook) is None:
        return 1
    print(t("cli.telegram_webhook_set", url=url))
    return 0


async def _get_me(bot: Bot) -> User:
    return await bot.get_me()


async def _with_bot(
    token: str, api_url: str, t: Translator, call: Callable[[Bot], Awaitable[T]]
) -> T | None:
    """`call` with a bot client (whose start asks Telegram who it is); None once a refusal or a
    network failure has been said on stderr, never with the token in it."""
    try:
        async with bot_for(token, api_url) as bot:
            return await call(bot)
    except InvalidToken:  # its message quotes the token
        print(t("cli.telegram_bad_token"), file=sys.stderr)
    except NetworkError as error:
        if isinstance(error, BadRequest):  # a refusal, which PTB files under network errors
            print(t("cli.telegram_refused", error=error.message), file=sys.stderr)
        else:
            print(t("cli.telegram_unreachable", url=api_url, error=error.message), file=sys.stderr)
    except TelegramError as error:
        print(t("cli.telegram_refused", error=error.message), file=sys.stderr)
    return None
