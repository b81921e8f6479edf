"""The Telegram webhook: `POST /webhooks/telegram`, checked, parsed by PTB, handled once.

The event is applied to the conversation before the webhook answers, so a failure answers 500
and Telegram delivers the update again (processed once: the flow is idempotent on update_id).
Sending the replies happens after the answer, so a slow Bot API or our pacing never makes
Telegram wait, time out and retry.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import InvalidToken, TelegramError

from adapters.inbound import Ignored, note_ignored, parse_object, read_body
from adapters.pacing import InOrder, Pacer
from adapters.telegram.links import telegram_link
from adapters.telegram.moderation import TelegramModeration, from_group, post_to_telegram
from adapters.telegram.render import answered_card, continued, render_reply
from adapters.telegram.sender import NO_PREVIEW, TelegramSender, masked
from adapters.telegram.transport import AiohttpRequest
from adapters.telegram.updates import (
    Inbound,
    TappedMessage,
    bot_id_of,
    inbound_from_update,
    parse_update,
)
from core.broadcasts.delivery import BroadcastOutgoing
from core.flow import Flow, Outcome
from core.i18n import Translator
from core.messages import Reply
from core.moderation.chat_posts import OutgoingPost, Posted
from core.notices import Handover, Outgoing

log = logging.getLogger("consult.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# What Telegram accepts as a webhook secret_token (setWebhook).
SECRET_FORMAT = re.compile(r"[A-Za-z0-9_-]{1,256}")


@dataclass(frozen=True)
class TelegramConfig:
    """A bot's credentials and limits; `api_url` lets a local Bot API server or a fake stand in."""

    token: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    api_url: str = "https://api.telegram.org"
    messages_per_second: float = 30.0
    chat_messages_per_second: float = 1.0
    group_messages_per_minute: float = 20.0
    max_body_bytes: int = 256 * 1024
    handling_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not SECRET_FORMAT.fullmatch(self.webhook_secret):
            raise ValueError(
                "the Telegram webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -"
            )


def bot_for(token: str, api_url: str) -> Bot:
    """PTB's client for the bot with `token`, talking to the Bot API at `api_url` over our
    aiohttp transport (see adapters.telegram.transport)."""
    base = api_url.rstrip("/")
    return Bot(
        token,
        base_url=f"{base}/bot",
        base_file_url=f"{base}/file/bot",
        request=AiohttpRequest(connections=64),
    )


class TelegramChannel:
    """The Telegram side of the server: one bot, its webhook route and its sender."""

    name = "telegram"

    def __init__(self, config: TelegramConfig) -> None:
        self.config = config
        self.bot = bot_for(config.token, config.api_url)
        self.bot_id = bot_id_of(config.token)
        pacer = Pacer(config.messages_per_second, config.chat_messages_per_second)
        self.sender = TelegramSender(
            self.bot, pacer, group_per_minute=config.group_messages_per_minute
        )
        self.order = InOrder()
        self.flow: Flow | None = None
        self.moderation: TelegramModeration | None = None  # the moderators' groups
        self.ignored: Counter[str] = Counter()  # updates we could not act on, by kind
        self._late: set[asyncio.Future[Any]] = set()  # slow updates still being handled
        self.router = APIRouter()
        self.router.add_api_route(
            "/webhooks/telegram", self.receive, methods=["POST"], include_in_schema=False
        )

    async def open(self, flow: Flow) -> None:
        self.flow = flow
        self.moderation = TelegramModeration(
            flow.sessions, flow.secret, flow.clock, self.sender, lambda: self.bot.username
        )
        try:
            await self.bot.initialize()
            log.info("telegram: serving as @%s", self.bot.username)
        except InvalidToken:  # its message quotes the token: not for the logs
            log.error("telegram: Telegram rejected the bot token (CONSULT_TELEGRAM_TOKEN)")
        except TelegramError as error:  # the webhook still works; sends will retry
            log.warning("telegram: getMe failed: %s", error.message)

    async def close(self) -> None:
        if self._late:
            await asyncio.wait(self._late, timeout=30)
        await self.bot.shutdown()

    async def receive(self, request: Request, background: BackgroundTasks) -> Response:
        self._check_secret(request)
        data = parse_object(await read_body(request, self.config.max_body_bytes))
        if not isinstance(data, Ignored) and not isinstance(data.get("update_id"), int):
            raise HTTPException(400, "a Telegram update needs an integer update_id")
        update = data if isinstance(data, Ignored) else parse_update(data)
        if isinstance(update, Ignored):  # answered 200: Telegram would deliver an error again
            note_ignored(self.ignored, log, self.name, update.kind)
            return Response(status_code=200)
        if from_group(update):  # a moderators' chat, or a group we ignore: never participants
            assert self.moderation is not None, "the channel is opened when the server starts"
            return await self.moderation.receive(update, background)
        inbound = inbound_from_update(update, self.bot_id)
        outcome = Outcome()
        if inbound.event is not None:
            assert self.flow is not None, "the channel is opened when the server starts"
            handling = asyncio.ensure_future(self.flow.handle(inbound.event))
            await asyncio.wait({handling}, timeout=self.config.handling_timeout)
            if not handling.done():
                # The database is slow or locked. Telegram will retry; if this attempt still
                # completes, the retry is a duplicate and these replies are the ones sent.
                self._finish_later(handling, inbound)
                log.error("telegram: update %s is slow; asked Telegram to retry", update.update_id)
                return JSONResponse({"detail": "timed out, retry later"}, 503)
            if handling.exception() is not None:
                log.error(
                    "telegram: update %s failed; Telegram will retry",
                    update.update_id,
                    exc_info=handling.exception(),
                )
                return JSONResponse({"detail": "processing failed, retry later"}, 500)
            outcome = handling.result()
        background.add_task(self.deliver, inbound, outcome)
        tapped = inbound.tapped
        if tapped is not None and (not outcome.duplicate or outcome.replies):
            # Telegram makes a Bot API call put in the webhook's answer: the tap is answered
            # without a request of ours (https://core.telegram.org/bots/api#making-requests-when-getting-updates).
            answer = {"method": "answerCallbackQuery", "callback_query_id": tapped.query_id}
            return JSONResponse(answer)
        return Response(status_code=200)

    def _finish_later(self, handling: asyncio.Future[Outcome], inbound: Inbound) -> None:
        def finished(done: asyncio.Future[Outcome]) -> None:
            self._late.discard(done)
            if done.cancelled():
                return
            if done.exception() is not None:
                log.error("telegram: a slow update failed", exc_info=done.exception())
                return
            # The 503 carried no answer to the tap, and Telegram's retry is a duplicate.
            delivery = asyncio.ensure_future(self.deliver(inbound, done.result(), answer=True))
            self._late.add(delivery)
            delivery.add_done_callback(self._late.discard)

        self._late.add(handling)
        handling.add_done_callback(finished)

    def _check_secret(self, request: Request) -> None:
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            raise HTTPException(401, f"missing {SECRET_HEADER} header")
        if not hmac.compare_digest(given.encode(), self.config.webhook_secret.encode()):
            raise HTTPException(403, f"wrong {SECRET_HEADER} header")

    async def deliver(self, inbound: Inbound, outcome: Outcome, *, answer: bool = False) -> None:
        """Settle the tapped card, then send the replies, in this order, after what earlier
        events of the chat sent; `answer` the tap too when the webhook's answer could not."""
        chat = inbound.chat_id or (inbound.tapped.chat_id if inbound.tapped else None)
        async with self.order.turn(str(chat)):
            try:
                if await self._flow().still_current(outcome):  # a resumed one may be stale
                    await self._deliver(inbound, outcome, answer=answer)
            except Exception:  # a send bug must not take the server down; the event is saved
                log.exception("telegram: delivering replies to chat %s failed", masked(chat))
            finally:  # sent, or refused for good: a live worker never sends it again
                self._flow().sent(outcome.owed)

    async def resend(self, outcome: Outcome) -> None:
        """Send a participant resumed after a crash (`Flow.resume`) their current question, as
        new messages to their chat."""
        chat = int(outcome.address or 0)
        inbound = Inbound(None, chat_id=chat)
        await self.deliver(inbound, outcome)

    async def notify(self, notice: Outgoing) -> Handover:
        """Send a notice (`core.notices`) to the author's chat (their address), after what the
        chat is being sent already."""
        chat = int(notice.address)
        async with self.order.turn(str(chat)):
            return await self.sender.notify(chat, html.escape(notice.text, quote=False))

    async def broadcast(self, message: BroadcastOutgoing) -> Handover:
        """Send a broadcast's message (`core.broadcasts.delivery`) to a participant's chat, or
        post it in a Telegram channel the bot administers (`message.post`: "@name" or
        "-100..."), with a URL button to the bot's deep link when it has one (a /start that
        resumes the participant's sequence). A person who blocked the bot is unreachable; a
        paid broadcast (`allow_paid_broadcast`) is paced by the caller alone."""
        address = message.address
        chat: int | str = address if address.startswith("@") else int(address)
        parameters: dict[str, Any] = {
            "chat_id": chat,
            "text": html.escape(message.text, quote=False),
            "parse_mode": ParseMode.HTML,
            "link_preview_options": NO_PREVIEW,
        }
        if message.button is not None and self.bot.username:
            label = Translator(message.locale)("broadcast.button")
            url = telegram_link(self.bot.username, message.button)
            button = InlineKeyboardButton(label, url=url)
            parameters["reply_markup"] = InlineKeyboardMarkup([[button]])
        if message.paid:
            parameters["allow_paid_broadcast"] = True
        what = f"broadcast message {message.id}"
        async with self.order.turn(str(chat)):
            handover, _ = await self.sender.send_once(
                parameters, what, forbidden=Handover.UNREACHABLE, paced=not message.paid
            )
        return handover

    async def post_to_chat(self, post: OutgoingPost) -> Posted:
        """Post a proposal in a moderators' group, or edit its post (`core.moderation.chat`)."""
        return await post_to_telegram(self.sender, post)

    async def _deliver(self, inbound: Inbound, outcome: Outcome, *, answer: bool) -> None:
        if answer and inbound.tapped is not None:
            await self.sender.answer(inbound.tapped.query_id)
        tapped = inbound.tapped  # answered already, in the webhook's answer
        replies = outcome.replies
        settle = tapped is not None and inbound.event is not None and not outcome.duplicate
        if settle and tapped is not None and tapped.chat_id and tapped.message_id:
            replies = await self._settle(tapped, outcome)
        chat = inbound.chat_id or (tapped.chat_id if tapped is not None else None)
        if chat is not None:
            for reply in replies:
                for message in render_reply(reply):
                    await self.sender.send(chat, message)

    async def _settle(self, tapped: TappedMessage, outcome: Outcome) -> list[Reply]:
        """Edit the tapped message, and say which replies are still to send: none when it
        became the next question (`continued`); otherwise it keeps its text with the answer
        under it (or loses its buttons, if the tap was refused) and every reply follows."""
        assert tapped.chat_id is not None and tapped.message_id is not None
        if outcome.chosen is None:  # a stale button: take the old buttons away
            await self.sender.drop_buttons(tapped.chat_id, tapped.message_id)
            return outcome.replies
        message = continued(outcome.recall, outcome.replies)
        if message is not None and await self.sender.edit(
            tapped.chat_id, tapped.message_id, message.html, message.keyboard
        ):
            return []
        # Not editable into the next question (refused, say): it goes out as a new message.
        text = answered_card(tapped.shown_text or "", outcome.chosen.label)
        await self.sender.edit(tapped.chat_id, tapped.message_id, text)
        return outcome.replies

    def _flow(self) -> Flow:
        assert self.flow is not None, "the channel is opened when the server starts"
        return self.flow
