"""Sending to Telegram through python-telegram-bot, paced and retried.

Sends wait for a slot in the `Pacer` (Telegram's limits: about one message per second per chat,
30 per second overall, 20 per minute per group); a 429 that still comes back (`RetryAfter`) is
honoured with the delay Telegram gave, and network failures are retried with a backoff. A
request Telegram refuses (`BadRequest`, `Forbidden` when the participant blocked the bot) is
logged and dropped: retrying it could not succeed. A timeout is retried too, although Telegram
may have taken the first attempt: a card shown twice (its buttons work either way) is better
than a card lost, which would leave the participant waiting.
"""

from __future__ import annotations

import asyncio
import logging
import re
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBUserWarning

from adapters.pacing import Pacer, pace_again
from adapters.telegram.render import Keyboard, TelegramMessage
from core.notices import Handover

log = logging.getLogger("consult.telegram")
# `Bot.do_api_request` advises PTB's typed method for a method it knows; `_call` skips those on
# purpose (see its docstring), so the advice is silenced for this module's calls only.
warnings.filterwarnings("ignore", "Please use 'Bot\\.", PTBUserWarning, module=re.escape(__name__))

ATTEMPTS = 5
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)  # a link in a proposal never unfurls


def masked(chat_id: int | None) -> str:
    """A chat id fit for logs: in a private chat it is the person's Telegram id, which logs must
    not keep (they outlive /forget)."""
    return "-" if chat_id is None else f"…{str(chat_id)[-4:]}"


def markup(keyboard: Keyboard) -> InlineKeyboardMarkup | None:
    if not keyboard:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(label, callback_data=data) for label, data in row]
            for row in keyboard
        ]
    )


class TelegramSender:
    """Sends messages, edits and callback answers for one bot; counts what it could not send."""

    def __init__(
        self,
        bot: Bot,
        pacer: Pacer,
        *,
        group_per_minute: float = 20.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.bot = bot
        self.pacer = pacer
        self.group_rate = group_per_minute / 60
        self.sleep = sleep
        self.failures = 0
        self.throttled = 0

    async def send(self, chat_id: int, message: TelegramMessage) -> None:
        await self._pace(chat_id)
        await self._call(
            "sendMessage",
            chat_id,
            {
                "chat_id": chat_id,
                "text": message.html,
                "parse_mode": ParseMode.HTML,
                "reply_markup": markup(message.keyboard),
                "link_preview_options": NO_PREVIEW,
            },
        )

    async def notify(self, chat_id: int, html: str) -> Handover:
        """Send one notice (`core.notices`) and say what became of it (see `send_once`)."""
        parameters = {
            "chat_id": chat_id,
            "text": html,
            "parse_mode": ParseMode.HTML,
            "link_preview_options": NO_PREVIEW,
        }
        handover, _ = await self.send_once(parameters, f"a notice to chat {masked(chat_id)}")
        return handover

    async def send_once(
        self,
        parameters: dict[str, Any],
        what: str,
        *,
        forbidden: Handover = Handover.REFUSED,
        paced: bool = True,
    ) -> tuple[Handover, Any]:
        """sendMessage with `parameters`, and what became of it with Telegram's answer once sent.
        Unlike `send`, nothing that may have reached Telegram is sent again (a timeout, a 5xx):
        a person told twice is worse than a message marked unknown. A 429 is waited out, and a
        connection refused before the request was written is tried again, ATTEMPTS times at
        most. `what` names the message in the log, never by a participant's chat id.
        `forbidden` is what a 403 (the person blocked the bot) means to the caller; `paced`
        False leaves the pacing to the caller (a paid broadcast goes faster than the bot's
        usual overall rate)."""
        chat_id = parameters["chat_id"]
        for attempt in range(ATTEMPTS):
            if paced:
                await self._pace(chat_id)
            try:
                sent = await self.bot.do_api_request("sendMessage", api_kwargs=parameters)
                return Handover.SENT, sent
            except RetryAfter as error:
                self.throttled += 1
                await self.sleep(_seconds(error.retry_after))
                await pace_again()  # a slot of the caller's flow, if it paces (broadcasts)
            except InvalidToken:  # our configuration, not the message: try again once fixed
                log.error("telegram: the bot token was refused; %s waits", what)
                return Handover.RETRY, None
            except NetworkError as error:
                if not isinstance(error.__cause__, aiohttp.ClientConnectorError):
                    log.warning("telegram: %s may not have arrived: %s", what, error)
                    return Handover.UNKNOWN, None
                await self.sleep(0.5 * 2.0**attempt)
            except Forbidden as error:  # blocked by the person, removed from the channel
                log.warning("telegram refused %s: %s", what, error)
                self.failures += 1
                return forbidden, None
            except TelegramError as error:  # chat not found, bad request: for good
                log.warning("telegram refused %s: %s", what, error)
                self.failures += 1
                return Handover.REFUSED, None
        return Handover.RETRY, None

    async def edit(self, chat_id: int, message_id: int, html: str, keyboard: Keyboard = ()) -> bool:
        """Replace a message's text and its buttons (none unless `keyboard`); whether Telegram
        took the edit."""
        return await self._call(
            "editMessageText",
            chat_id,
            {
                "chat_id": chat_id,
                "message_id": message_id,
                "text": html,
                "parse_mode": ParseMode.HTML,
                "reply_markup": markup(keyboard),
                "link_preview_options": NO_PREVIEW,
            },
        )

    async def drop_buttons(self, chat_id: int, message_id: int) -> None:
        parameters = {"chat_id": chat_id, "message_id": message_id}
        await self._call("editMessageReplyMarkup", chat_id, parameters)

    async def answer(self, query_id: str) -> None:
        """Answer a callback query (Telegram shows a spinner on the button until then)."""
        await self._call("answerCallbackQuery", None, {"callback_query_id": query_id})

    async def _pace(self, chat_id: int | str) -> None:
        # Groups and channels have negative ids (or an @username) and a per-minute limit of
        # their own.
        group = {"rate": self.group_rate, "burst": 1.0} if _is_group(chat_id) else {}
        await self.pacer.wait(str(chat_id), **group)

    async def _call(self, method: str, chat_id: int | None, parameters: dict[str, Any]) -> bool:
        """`method` through PTB's request path, without turning Telegram's answer into objects.

        PTB's typed methods (`send_message`...) end by building a `Message` from the answer: a
        third of the CPU a send costs here (0.5 ms of 1.5), for an object nothing reads.
        `Bot.do_api_request` without a return type is PTB's public raw call: it encodes the
        parameters as the typed methods do (markup objects, enums), leaves the dict as it is, and
        raises the same errors (`RetryAfter`, `BadRequest`...) from Telegram's answer.
        """

        def request() -> Awaitable[Any]:
            return self.bot.do_api_request(method, api_kwargs=parameters)

        if not await with_retries(method, chat_id, request, self._delay_for, sleep=self.sleep):
            self.failures += 1
            return False
        return True

    def _delay_for(self, error: Exception, attempt: int) -> float | None:
        """How PTB's errors are met: see `with_retries`."""
        if isinstance(error, RetryAfter):
            self.throttled += 1
            return _seconds(error.retry_after)
        if isinstance(error, BadRequest | Forbidden):  # both are refusals...
            return None
        if isinstance(error, NetworkError):  # ...that PTB files under network errors
            return 0.5 * 2.0**attempt
        if isinstance(error, TelegramError):
            return None
        raise error


Delay = Callable[[Exception, int], float | None]


async def with_retries(
    method: str,
    chat_id: int | None,
    request: Callable[[], Awaitable[Any]],
    delay_for: Delay,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Make a Bot API request until it succeeds, Telegram refuses it, or ATTEMPTS run out;
    whether it went through. `delay_for(error, attempt)` tells, for the SDK at hand, how long to
    wait before trying again (Telegram's retry_after, a backoff), or None for a refusal that
    retrying could not change; it raises what is not Telegram's."""
    for attempt in range(ATTEMPTS):
        try:
            await request()
            return True
        except Exception as error:
            delay = delay_for(error, attempt)
            if delay is None:
                log.warning("telegram refused %s to chat %s: %s", method, masked(chat_id), error)
                return False
            await sleep(delay)
    log.error(
        "telegram: gave up %s to chat %s after %d attempts", method, masked(chat_id), ATTEMPTS
    )
    return False


def _is_group(chat_id: int | str) -> bool:
    return (isinstance(chat_id, str) and chat_id.startswith("@")) or int(chat_id) < 0


def _seconds(period: int | timedelta) -> float:
    return period.total_seconds() if isinstance(period, timedelta) else float(period)
