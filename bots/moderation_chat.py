"""Moderators' chats from the outside: `consult moderation connect|disconnect`, `consult
organiser chat-code`, and the delivery worker's round of chat posts (`core.moderation.chat`)."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bots.bootstrap import runtime
from bots.settings import Settings
from core.flow import utc_now
from core.i18n import Translator
from core.models import ChatPost
from core.moderation.actors import Actor, Source
from core.moderation.chat import ChatError, chat_code, connect_chat, disconnect_chat
from core.moderation.chat_posts import OutgoingPost, Posted, claim_posts, posted, queue_posts
from core.notices import Handover, mark_unknown, record

log = logging.getLogger("consult.notices")
USAGE_ERROR = 2
POSTS_BATCH = 20  # a group takes 20 messages a minute: a larger batch only waits
CHAT_ACTIONS = ("connect", "disconnect")
# What each channel calls a chat: a Telegram group's id is a (negative) number, a Slack
# channel's an upper-case code.
CHAT_IDS = {"telegram": re.compile(r"-?\d{1,20}"), "slack": re.compile(r"[CGD][A-Z0-9]{6,20}")}
BAD_CHAT = {"telegram": "cli.chat_bad_telegram_chat", "slack": "cli.chat_bad_slack_channel"}


@runtime_checkable
class ChatPoster(Protocol):
    """A channel that can post in moderators' chats (and edit its posts)."""

    async def post_to_chat(self, post: OutgoingPost) -> Posted: ...


async def post_round(
    sessions: async_sessionmaker[AsyncSession],
    worker: str,
    channels: Mapping[str, object],
    clock: Callable[[], datetime],
    stale_after: timedelta,
) -> int:
    """One round of the delivery worker for the moderators' chats: write what they are to be
    shown, mark unknown what dead workers were posting, claim a batch, post it (in order:
    a post before its edits), record each; how many were claimed."""
    posters = {name: ch for name, ch in channels.items() if isinstance(ch, ChatPoster)}
    if not posters:
        return 0
    async with sessions() as session, session.begin():
        now = clock()
        await queue_posts(session, now)
        unknown = await mark_unknown(session, now, stale_after, table=ChatPost)
        batch = await claim_posts(session, worker, tuple(posters), now, limit=POSTS_BATCH)
    if unknown:
        log.warning("%d moderators' post(s) were being sent by a worker that died", unknown)
    for post in batch:
        try:
            result = await posters[post.channel].post_to_chat(post)
        except Exception:  # a bug in a channel: it may have posted, so it is not posted again
            log.exception("posting %d in a moderators' chat failed", post.id)
            result = Posted(Handover.UNKNOWN)
        try:
            async with sessions() as session, session.begin():
                await record(session, worker, post.id, result.handover, clock(), table=ChatPost)
                await posted(session, post.id, result.message_id)
        except SQLAlchemyError as error:  # claimed by us: unknown if we die, never twice
            log.warning("could not record moderators' post %d: %s", post.id, error)
    return len(batch)


def add_chat_commands(actions: Any) -> None:
    """`consult moderation connect CHANNEL CHAT SLUG [--locale]` and `disconnect CHANNEL CHAT`."""
    connect = actions.add_parser(
        "connect", help="post a consultation's pending proposals in a moderators' chat"
    )
    connect.add_argument("channel", choices=sorted(CHAT_IDS), metavar="CHANNEL")
    connect.add_argument("chat", metavar="CHAT_ID", help="a Telegram group's id, a Slack channel's")
    connect.add_argument("slug", metavar="SLUG")
    connect.add_argument("--locale", help="the chat's language (default: the consultation's)")
    disconnect = actions.add_parser("disconnect", help="stop posting in a moderators' chat")
    disconnect.add_argument("channel", choices=sorted(CHAT_IDS), metavar="CHANNEL")
    disconnect.add_argument("chat", metavar="CHAT_ID")


def add_chat_code_command(actions: Any) -> None:
    """`consult organiser chat-code EMAIL`."""
    code = actions.add_parser(
        "chat-code", help="print a one-time code linking a chat account to an organiser"
    )
    code.add_argument("email")


def _cli_actor() -> Actor:
    login = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return Actor(f"cli:{login}", Source.CLI)


async def run_chat_command(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    """Connect or disconnect a chat; a refusal is a message and exit code 2."""
    if not CHAT_IDS[args.channel].fullmatch(args.chat):
        print(t(BAD_CHAT[args.channel], chat=args.chat), file=sys.stderr)
        return USAGE_ERROR
    now = utc_now()
    try:
        async with runtime(settings) as rt, rt.sessions() as session, session.begin():
            if args.action == "connect":
                chat = await connect_chat(
                    session,
                    args.channel,
                    args.chat,
                    args.slug,
                    _cli_actor(),
                    now=now,
                    locale=args.locale,
                )
                said = t(
                    "cli.chat_connected",
                    channel=args.channel,
                    chat=args.chat,
                    slug=args.slug,
                    locale=chat.locale,
                )
            else:
                was = await disconnect_chat(session, args.channel, args.chat, _cli_actor(), now=now)
                msgid = "cli.chat_disconnected" if was else "cli.chat_not_connected"
                said = t(msgid, channel=args.channel, chat=args.chat)
    except ChatError as problem:
        print(t(problem.msgid, **problem.values), file=sys.stderr)
        return USAGE_ERROR
    print(said)
    return 0


async def run_chat_code(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    """Print a new one-time link code for the organiser `args.email`."""
    try:
        async with runtime(settings) as rt, rt.sessions() as session, session.begin():
            code = await chat_code(session, args.email, now=utc_now())
    except ChatError as problem:
        print(t(problem.msgid, **problem.values), file=sys.stderr)
        return USAGE_ERROR
    print(t("cli.chat_code", code=code))
    return 0
