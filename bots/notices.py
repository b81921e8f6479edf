"""The delivery worker of the authors' notices (`core.notices`): inside `consult serve`, next to
the Keeper, or alone as `consult deliver`.

Each round claims a batch in a committed transaction, sends it through the channels, and
records what became of each notice. The worker beats in a task of its own, so that a long batch
(pacing, a slow platform) never makes it look dead to the others.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from babel.dates import format_timedelta
from sqlalchemy.exc import SQLAlchemyError

from adapters.channel import WebhookChannel
from bots.bootstrap import Runtime, runtime
from bots.broadcast_worker import broadcast_worker
from bots.channels import enabled_channels
from bots.errors import ChannelNotConfigured, OrganiserError
from bots.moderation_chat import post_round
from bots.outbox_worker import OutboxWorker
from bots.scheduler import scheduler_for
from bots.settings import Settings
from core.definitions import consultation_by_slug
from core.flow import utc_now
from core.i18n import Translator
from core.moderation import Actor, Source
from core.moderation.resend import NotResendable, UnknownNotice, resend_notice
from core.notices import (
    Handover,
    Outgoing,
    claim,
    mark_unknown,
    notice_counts,
    notices_needing_attention,
    record,
)

log = logging.getLogger("consult.notices")

USAGE_ERROR = 2


def notice_worker(
    rt: Runtime, channels: Mapping[str, WebhookChannel], settings: Settings
) -> NoticeWorker:
    """The worker of a server or of `consult deliver`, paced by the settings."""
    return NoticeWorker(
        rt.sessions,
        channels,
        clock=rt.flow.clock,
        every=settings.notices_every_seconds,
        beat_every=settings.delivery_beat_seconds,
        stale_after=settings.delivery_stale_seconds,
    )


class NoticeWorker(OutboxWorker):
    """Sends the notices of the channels this process runs, every `every` seconds, and marks
    unknown those of workers silent for `stale_after` seconds."""

    async def round(self) -> int:
        """Mark the dead workers' notices unknown, claim a batch, send it, record it; how
        many notices were claimed."""
        if self._unrecorded:
            await self._record_left()
        async with self.sessions() as session, session.begin():
            now = self.clock()
            unknown = await mark_unknown(session, now, self.stale_after)
            batch = await claim(session, self.worker, tuple(self.channels), now, limit=self.batch)
        if unknown:
            log.warning(
                "%d notice(s) were being sent by a worker that died: marked unknown", unknown
            )
        if batch:
            await asyncio.gather(*(self._send(notice) for notice in batch))
        # The moderators' chats (core.moderation.chat): their posts go through the same
        # claim/record mechanics, in rows of their own.
        posts = await post_round(
            self.sessions, self.worker, self.channels, self.clock, self.stale_after
        )
        return len(batch) + posts

    async def _send(self, notice: Outgoing) -> None:
        try:
            handover = await self.channels[notice.channel].notify(notice)
        except Exception:  # a bug in a channel: it may have sent, so it is not sent again
            log.exception("sending notice %d on %s failed", notice.id, notice.channel)
            handover = Handover.UNKNOWN
        self.outcomes[handover] += 1
        try:
            async with self.sessions() as session, session.begin():
                await record(session, self.worker, notice.id, handover, self.clock())
        except (SQLAlchemyError, OSError) as error:  # the send is done: record it next round
            log.warning("could not record notice %d (%s): %s", notice.id, handover, error)
            self._unrecorded.append((notice.id, handover))

    async def _record_left(self) -> None:
        async with self.sessions() as session, session.begin():
            for notice_id, handover in self._unrecorded:
                await record(session, self.worker, notice_id, handover, self.clock())
        self._unrecorded = []


def add_deliver_command(commands: Any) -> None:
    """`consult deliver [--once]`."""
    deliver = commands.add_parser(
        "deliver",
        help="send the authors' notices of moderation decisions, until stopped (SIGTERM)",
    )
    deliver.add_argument("--once", action="store_true", help="send what is ready, then exit")


async def run_deliver(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    """Send notices on the configured channels: those ready (`--once`), or until SIGTERM or
    Ctrl-C. Refused (exit code 2) when no channel is configured, or one is half configured."""
    try:
        mounted = enabled_channels(settings)
    except ChannelNotConfigured as problem:
        print(t(problem.msgid, **problem.values), file=sys.stderr)
        return USAGE_ERROR
    if not mounted:
        print(t("cli.deliver_no_channels"), file=sys.stderr)
        return USAGE_ERROR
    by_name = {channel.name: channel for channel in mounted}
    async with runtime(settings) as rt:
        opened: list[WebhookChannel] = []
        worker = notice_worker(rt, by_name, settings)
        broadcasts = broadcast_worker(rt, by_name, settings)
        scheduler = scheduler_for(rt, settings)  # plans due broadcasts, if no other process does
        try:
            for channel in mounted:
                await channel.open(rt.flow)
                opened.append(channel)
            if args.once:
                await scheduler.run_once()
                done = await worker.drain() + await broadcasts.drain()
                counts = {handover.name.lower(): done[handover] for handover in Handover}
                print(
                    t(
                        "cli.deliver_drained",
                        sent=counts["sent"],
                        failed=counts["refused"] + counts["unreachable"],
                        waiting=counts["needs_template"],
                        unknown=counts["unknown"],
                        retry=counts["retry"],
                    )
                )
                return 0
            print(t("cli.deliver_running", channels=", ".join(sorted(by_name))), flush=True)
            stopping = asyncio.Event()
            loop = asyncio.get_running_loop()
            for number in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(number, stopping.set)
            await worker.start()
            await broadcasts.start()
            await scheduler.start()
            await stopping.wait()
            return 0
        finally:
            await scheduler.stop()
            await broadcasts.stop()
            await worker.stop()
            for channel in reversed(opened):
                await channel.close()


# What an organiser reads of a notice's state, kind and problem (literal msgids for the i18n test).
_STATES = {
    "queued": "notice.state.queued",
    "claimed": "notice.state.claimed",
    "sent": "notice.state.sent",
    "failed": "notice.state.failed",
    "unknown": "notice.state.unknown",
    "waiting": "notice.state.waiting",
}
_KINDS = {"accepted": "notice.kind.accepted", "refused": "notice.kind.refused"}
_PROBLEMS = {
    "no-template": "notice.problem.no-template",
    "worker-died": "notice.problem.worker-died",
    "no-answer": "notice.problem.no-answer",
}


def _said(t: Translator, labels: dict[str, str], value: str | None) -> str:
    return t(labels[value]) if value in labels else (value or "")


async def show_notices(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    """`consult moderation notices SLUG [--json]`: a consultation's notices by state, and
    those needing the organiser's attention (waiting, unknown) by proposal: never an address
    or a participant. `--resend ID` queues an unknown or failed notice again."""
    if args.resend is not None:
        return await _resend(settings, args, t)
    now = utc_now()
    async with runtime(settings) as rt, rt.sessions() as session:
        consultation = await consultation_by_slug(session, args.slug)
        if consultation is None or consultation.id is None:
            raise OrganiserError("cli.unknown_consultation", slug=args.slug)
        counts = await notice_counts(session, consultation.id)
        attention = await notices_needing_attention(session, consultation.id)
    if args.json:
        listed = {
            "slug": args.slug,
            "counts": counts,
            "needing_attention": [
                {
                    "notice": view.id,
                    "proposal": view.proposal_id,
                    "kind": view.kind,
                    "channel": view.channel,
                    "state": view.state,
                    "problem": view.problem,
                    "age_seconds": int((now - view.created_at).total_seconds()),
                }
                for view in attention
            ],
        }
        print(json.dumps(listed, indent=2, ensure_ascii=False))
        return 0
    if not counts:
        print(t("cli.notices_none", slug=args.slug))
        return 0
    by_state = ", ".join(
        f"{_said(t, _STATES, state)} {t.number(counts[state])}"
        for state in _STATES
        if state in counts
    )
    print(t("cli.notices_counts", slug=args.slug, counts=by_state))
    if not attention:
        print(t("cli.notices_attention_none"))
        return 0
    print(t("cli.notices_attention_heading"))
    for view in attention:
        age = format_timedelta(now - view.created_at, locale=t.locale)
        kind = _said(t, _KINDS, view.kind)
        why = _said(t, _PROBLEMS, view.problem)
        print(f"  #{view.id}  #{view.proposal_id}  {kind}  {view.channel}  {age}  {why}")
    return 0


async def _resend(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    login = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    actor = Actor(args.moderator or f"cli:{login}", Source.CLI)
    async with runtime(settings) as rt, rt.sessions() as session, session.begin():
        consultation = await consultation_by_slug(session, args.slug)
        if consultation is None or consultation.id is None:
            raise OrganiserError("cli.unknown_consultation", slug=args.slug)
        try:
            await resend_notice(session, consultation.id, args.resend, actor, utc_now())
        except UnknownNotice:
            raise OrganiserError("cli.notices_unknown_notice", id=args.resend) from None
        except NotResendable as refused:
            state = _said(t, _STATES, refused.state)
            raise OrganiserError(
                "cli.notices_not_resendable", id=args.resend, state=state
            ) from None
    print(t("cli.notices_resent", id=args.resend))
    return 0
