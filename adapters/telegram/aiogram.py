"""Consultations inside an existing aiogram 3 bot: a Router to include in its Dispatcher.

    from adapters.telegram.aiogram import consultation_router

    dispatcher.include_router(consultation_router(flow))  # after your own routers

The router answers private messages and button taps that the bot's own routers leave
unhandled, with the same core, events and rendering as our webhook. The conversation's state
stays in the consultation database (no aiogram FSM), so any number of bot processes can share
it. Updates are processed once even if aiogram sees them twice (keys are per bot and update).

The flow is best built without a ledger (`core.outbox`): nothing here resends what a crashed
process owed, as `consult serve`'s keeper does; with one, run `bots.delivery.Keeper` beside the
dispatcher, or the owed rows are never settled.

The event is saved before anything is sent, so sending never raises into the bot: a 429 is
waited out (Telegram's retry_after) and retried, a network failure retried with a backoff, and
a call Telegram refuses (the participant blocked the bot, say) is logged and dropped, as our
webhook's sender does. Retrying the update could not help: it would be a duplicate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramRetryAfter
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    Update,
)

from adapters.telegram.render import (
    Keyboard,
    TelegramMessage,
    answered_card,
    continued,
    render_reply,
)
from adapters.telegram.sender import with_retries
from adapters.telegram.updates import callback_event, message_event, update_key
from core.flow import Flow, Outcome

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


def consultation_router(flow: Flow, *, name: str = "consult") -> Router:
    """A Router running participants' conversations through `flow`."""
    router = Router(name=name)

    @router.message(F.chat.type == "private", F.from_user)
    async def on_message(message: Message, bot: Bot, event_update: Update) -> None:
        assert message.from_user is not None  # the filter above
        user = message.from_user
        key = update_key(bot.id, event_update.update_id)
        event = message_event(key, message.chat.id, user.id, user.language_code, message.text or "")
        outcome = await flow.handle(event)
        try:
            await _send_replies(bot, message.chat.id, outcome)
        finally:  # sent, or refused for good (see `Flow.sent`)
            flow.sent(outcome.owed)

    @router.callback_query(F.message.chat.type == "private", F.data)
    async def on_tap(query: CallbackQuery, bot: Bot, event_update: Update) -> None:
        assert query.message is not None and query.data is not None  # the filters above
        chat_id = query.message.chat.id
        key = update_key(bot.id, event_update.update_id)
        user = query.from_user
        outcome = await flow.handle(
            callback_event(key, chat_id, user.id, user.language_code, query.data)
        )
        try:
            await _settle_tap(bot, query, outcome)
        finally:  # sent, or refused for good (see `Flow.sent`)
            flow.sent(outcome.owed)

    return router


async def _settle_tap(bot: Bot, query: CallbackQuery, outcome: Outcome) -> None:
    """Answer the tap, edit the tapped card, send what follows."""
    assert query.message is not None
    chat_id = query.message.chat.id
    if outcome.duplicate and not outcome.replies:
        return
    await _call("answerCallbackQuery", chat_id, query.answer)
    if outcome.duplicate:  # the replies of a worker that died: its question asked again
        await _send_replies(bot, chat_id, outcome)
        return
    message_id = query.message.message_id
    shown = query.message.text if isinstance(query.message, Message) else None
    if outcome.chosen is None:  # a stale button: take the old buttons away
        await _call(
            "editMessageReplyMarkup",
            chat_id,
            lambda: bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id),
        )
        await _send_replies(bot, chat_id, outcome)
        return
    # The tapped card becomes the next question where the conversation goes on with one,
    # else keeps its text with the answer under it, and the replies follow.
    following = continued(outcome.recall, outcome.replies)
    if following is None:
        following = TelegramMessage(answered_card(shown or "", outcome.chosen.label))
    edit = partial(
        bot.edit_message_text,
        following.html,
        chat_id=chat_id,
        message_id=message_id,
        parse_mode="HTML",
        reply_markup=_markup(following.keyboard),
        link_preview_options=NO_PREVIEW,
    )
    edited = await _call("editMessageText", chat_id, edit)
    if not (edited and following.keyboard):
        await _send_replies(bot, chat_id, outcome)


async def _send_replies(bot: Bot, chat_id: int, outcome: Outcome) -> None:
    for reply in outcome.replies:
        for message in render_reply(reply):
            send = partial(
                bot.send_message,
                chat_id,
                message.html,
                parse_mode="HTML",
                reply_markup=_markup(message.keyboard),
                link_preview_options=NO_PREVIEW,
            )
            await _call("sendMessage", chat_id, send)


async def _call(method: str, chat_id: int, request: Callable[[], Awaitable[Any]]) -> bool:
    return await with_retries(method, chat_id, request, _delay_for)


def _delay_for(error: Exception, attempt: int) -> float | None:
    """How aiogram's errors are met: see `with_retries`."""
    if isinstance(error, TelegramRetryAfter):
        return float(error.retry_after)
    if isinstance(error, TelegramNetworkError):  # a timeout or a dropped connection
        return 0.5 * 2.0**attempt
    if isinstance(error, TelegramAPIError):
        return None
    raise error


def _markup(keyboard: Keyboard) -> InlineKeyboardMarkup | None:
    if not keyboard:
        return None
    rows = [
        [InlineKeyboardButton(text=label, callback_data=data) for label, data in row]
        for row in keyboard
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)
