"""Moderation in a Telegram group: its updates as core moderation calls, posts as messages.

Participants are served in private chats only (`adapters.telegram.updates`); every update from a
group or a supergroup comes here instead, and never reaches the participants' flow. Two are acted
on: `/link CODE` (also `/link@our_bot CODE`, the form a bot with privacy mode receives), and a
tap on a post's button. Both are answered in the webhook's own answer or right after it: a
callback answer is shown to the moderator who tapped (a refusal, who holds a lock), a `/link`
is answered in the group. Whatever else a group says is ignored (200).
"""

from __future__ import annotations

import asyncio
import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import BackgroundTasks
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import (
    DBAPIError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import (
    TimeoutError as PoolTimeout,
)
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.warnings import PTBUserWarning

from adapters.telegram.render import CALLBACK_DATA_LIMIT, TEXT_LIMIT, Keyboard, escape
from adapters.telegram.sender import NO_PREVIEW, TelegramSender, markup
from adapters.telegram.updates import CHANNEL, TelegramUpdate
from core.moderation.chat import Tap, link_code_of, link_member, tap_in_chat
from core.moderation.chat_posts import Buttons, OutgoingPost, Posted
from core.notices import Handover

log = logging.getLogger("consult.telegram")
# PTB advises its typed methods; the raw call is on purpose (see `TelegramSender._call`).
warnings.filterwarnings("ignore", "Please use 'Bot\\.", PTBUserWarning, module=re.escape(__name__))

GROUPS = frozenset({"group", "supergroup"})
ANSWER_LIMIT = 200  # characters of a callback answer's text
# `/link`, or `/link@bot` as Telegram writes a command addressed to one bot in a group.
LINK = re.compile(r"/link(?:@([A-Za-z0-9_]{1,64}))?(?:\s+(.*))?", re.IGNORECASE | re.DOTALL)


def from_group(update: TelegramUpdate) -> bool:
    """Whether an update comes from a group or a supergroup (a moderators' chat, or not)."""
    if update.callback_query is not None:
        message = update.callback_query.message
        return message is not None and message.chat.type in GROUPS
    return update.message is not None and update.message.chat.type in GROUPS


@dataclass(frozen=True)
class LinkCommand:
    """`/link CODE` sent in a group by a member."""

    chat_id: int
    member_id: int
    code: str


def link_command(update: TelegramUpdate, bot_username: str | None) -> LinkCommand | None:
    """The `/link` command of a group message, unless addressed to another bot; None for any
    other message."""
    message = update.message
    if message is None or message.from_user is None or message.text is None:
        return None
    found = LINK.fullmatch(message.text.strip())
    if found is None:
        return None
    addressed = found.group(1)
    if addressed and bot_username and addressed.casefold() != bot_username.casefold():
        return None
    return LinkCommand(message.chat.id, message.from_user.id, link_code_of(found.group(2) or ""))


def tap_of(update: TelegramUpdate) -> Tap | None:
    """The tap on a button of a group's message, if the update is one with data."""
    query = update.callback_query
    if query is None or query.message is None or not query.data:
        return None
    chat = str(query.message.chat.id)
    return Tap(CHANNEL, chat, str(query.from_user.id), query.data)


def keyboard_of(buttons: Buttons) -> Keyboard:
    """A post's buttons as an inline keyboard. Raises ValueError for data past Telegram's 64
    bytes: the core's data is short by design, so this is a bug to surface."""
    for row in buttons:
        for button in row:
            if not 0 < len(button.data.encode()) <= CALLBACK_DATA_LIMIT:
                raise ValueError(f"button data {button.data!r} does not fit Telegram's 64 bytes")
    return tuple(tuple((button.label, button.data) for button in row) for row in buttons)


def post_html(text: str) -> str:
    """A post's text in Telegram's HTML, cut to a message's 4,096 characters."""
    shown = escape(text)
    while len(shown) > TEXT_LIMIT:  # escaping lengthens: cut the text, not an entity
        text = text[: len(text) - (len(shown) - TEXT_LIMIT) - 1]
        shown = escape(text + "…")
    return shown


async def post_to_telegram(sender: TelegramSender, post: OutgoingPost) -> Posted:
    """Send a post (or edit it, `post.message_id`) to its group. A new post is never sent again
    once it may have reached Telegram (a timeout: unknown); an edit says the same again, so it is
    retried by the sender."""
    chat = int(post.chat_id)
    html = post_html(post.text)
    keyboard = keyboard_of(post.buttons)
    if post.message_id is not None:
        done = await sender.edit(chat, int(post.message_id), html, keyboard)
        return Posted(Handover.SENT if done else Handover.REFUSED, post.message_id)
    parameters = {
        "chat_id": chat,
        "text": html,
        "parse_mode": ParseMode.HTML,
        "reply_markup": markup(keyboard),
        "link_preview_options": NO_PREVIEW,
    }
    handover, sent = await sender.send_once(parameters, "a moderators' post")
    message_id = sent.get("message_id") if isinstance(sent, dict) else None
    return Posted(handover, None if message_id is None else str(message_id))


def transient(error: SQLAlchemyError) -> bool:
    """Whether the same request may succeed later: the database unreachable, busy or locked,
    a connection lost. A query it refuses (a value out of range) would fail the same again."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError | InterfaceError | PoolTimeout)


class TelegramModeration:
    """The moderators' groups of one bot: `/link` and taps, over the server's database."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        secret: bytes,
        clock: Callable[[], datetime],
        sender: TelegramSender,
        bot_username: Callable[[], str | None],
    ) -> None:
        self.sessions = sessions
        self.secret = secret
        self.clock = clock
        self.sender = sender
        self.bot_username = bot_username

    async def receive(self, update: TelegramUpdate, background: BackgroundTasks) -> Response:
        """Answer a group's update: 200 whatever it holds, 500 (Telegram delivers it again)
        only when the database failed for a while (unreachable, locked), having changed
        nothing. Any other database error would fail again on every delivery: logged, 200."""
        try:
            tap = tap_of(update)
            if tap is not None and update.callback_query is not None:
                return await self._tapped(update, tap, background)
            command = link_command(update, self.bot_username())
            if command is not None:
                await self._link(command, background)
        except SQLAlchemyError as error:
            log.exception("telegram: a moderators' chat update %s failed", update.update_id)
            if transient(error):
                return JSONResponse({"detail": "processing failed, retry later"}, 500)
        return Response(status_code=200)

    async def _tapped(
        self, update: TelegramUpdate, tap: Tap, background: BackgroundTasks
    ) -> Response:
        query = update.callback_query
        assert query is not None and query.message is not None
        async with self.sessions() as session, session.begin():
            answer = await tap_in_chat(session, tap, secret=self.secret, now=self.clock())
        if answer.buttons is not None:
            background.add_task(
                self._set_buttons, query.message.chat.id, query.message.message_id, answer.buttons
            )
        # The answer rides in the webhook's answer: no request of ours, and it is shown at once.
        return JSONResponse(
            {
                "method": "answerCallbackQuery",
                "callback_query_id": query.id,
                "text": answer.text[:ANSWER_LIMIT],
            }
        )

    async def _link(self, command: LinkCommand, background: BackgroundTasks) -> None:
        async with self.sessions() as session, session.begin():
            said = await link_member(
                session,
                CHANNEL,
                str(command.chat_id),
                str(command.member_id),
                command.code,
                secret=self.secret,
                now=self.clock(),
            )
        background.add_task(self._say, command.chat_id, said)

    async def _say(self, chat_id: int, text: str) -> None:
        await self._call("sendMessage", {"chat_id": chat_id, "text": text}, chat_id)

    async def _set_buttons(self, chat_id: int, message_id: int, buttons: Buttons) -> None:
        parameters = {
            "chat_id": chat_id,
            "message_id": message_id,
            "reply_markup": markup(keyboard_of(buttons)),
        }
        await self._call("editMessageReplyMarkup", parameters, chat_id)

    async def _call(self, method: str, parameters: dict[str, Any], chat_id: int) -> None:
        """One request for a moderator who is waiting: no retry, a failure logged."""
        await self.sender.pacer.wait(str(chat_id), rate=self.sender.group_rate, burst=1.0)
        try:
            async with asyncio.timeout(30):
                await self.sender.bot.do_api_request(method, api_kwargs=parameters)
        except (TelegramError, TimeoutError) as error:
            log.warning("telegram: %s in a moderators' chat failed: %s", method, error)
