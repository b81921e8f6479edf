"""`consult moderation ...`: the moderation queue and decisions from a terminal or a script.

Thin glue over `core.moderation`: each command is one core call in one transaction, its
refusals said in the organiser's language with exit code 2. Nothing printed names a
participant: a proposal is its id, its text and its language.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from datetime import datetime
from typing import Any

from babel.dates import format_timedelta

from bots.bootstrap import runtime
from bots.errors import OrganiserError
from bots.moderation_chat import CHAT_ACTIONS, add_chat_commands, run_chat_command
from bots.notices import show_notices
from bots.refusals import refusal_values, short_datetime, status_label
from bots.settings import Settings
from core.definitions import consultation_by_slug
from core.flow import utc_now
from core.i18n import Translator
from core.models import AuditEntry
from core.moderation import (
    Accept,
    Actor,
    Archive,
    Decided,
    Decision,
    ModerationError,
    Postpone,
    QueueOrder,
    Refuse,
    Served,
    Source,
    Withdraw,
    audit_log,
    decide_many,
    next_for,
    pending_proposals,
)
from core.moderation.flags import Flag
from core.moderation.history import AUDIT_PAGE_MAX, audit_fields

USAGE_ERROR = 2
QUEUE_SHOWN = 200


def add_moderation_commands(commands: Any) -> None:
    """`consult moderation queue|next|accept|refuse|postpone|archive|withdraw`."""
    moderation = commands.add_parser("moderation", help="moderate participants' proposals")
    actions = moderation.add_subparsers(dest="action", required=True, metavar="ACTION")
    queue = actions.add_parser("queue", help="the pending proposals, oldest first")
    queue.add_argument("slug", metavar="SLUG")
    queue.add_argument(
        "--flagged-first", action="store_true", help="the flagged proposals before the others"
    )
    queue.add_argument(
        "--flag", choices=[str(flag) for flag in Flag], help="only the proposals with this flag"
    )
    queue.add_argument("--json", action="store_true", help="print the queue as JSON")
    served = actions.add_parser("next", help="take the next pending proposal (held for you)")
    served.add_argument("slug", metavar="SLUG")
    order = served.add_mutually_exclusive_group()
    order.add_argument(
        "--by-author",
        action="store_true",
        help="the next pending proposal of the author you decided last first, if any",
    )
    order.add_argument(
        "--flagged-first", action="store_true", help="the oldest flagged proposal first, if any"
    )
    served.add_argument("--json", action="store_true", help="print the proposal as JSON")
    _add_moderator(served)
    add_chat_commands(actions)
    notices = actions.add_parser(
        "notices", help="the authors' notices: how many by state, and those needing attention"
    )
    notices.add_argument("slug", metavar="SLUG")
    notices.add_argument("--json", action="store_true", help="print them as JSON")
    notices.add_argument(
        "--resend",
        type=int,
        metavar="ID",
        help="send an unknown or failed notice again (the audit log records who did)",
    )
    _add_moderator(notices)
    audit = actions.add_parser(
        "audit", help="export the consultation's audit log, oldest first (JSON lines or CSV)"
    )
    audit.add_argument("slug", metavar="SLUG")
    audit.add_argument("--csv", action="store_true", help="CSV with a header instead of JSON lines")
    decisions = (
        ("accept", "accept proposals (shown to participants)"),
        ("refuse", "refuse proposals with a reason"),
        ("postpone", "set pending proposals aside, to decide later"),
        ("archive", "archive proposals (kept out, no reason)"),
        ("withdraw", "withdraw accepted proposals (out of every sequence, votes kept)"),
    )
    for name, help_text in decisions:
        command = actions.add_parser(name, help=help_text)
        command.add_argument("ids", type=int, nargs="+", metavar="ID")
        if name in ("accept", "refuse"):
            command.add_argument(
                "--no-notify", action="store_true", help="do not tell the author (default: told)"
            )
        if name == "accept":
            command.add_argument("--text", help="the proposal's edited text (one ID only)")
        if name == "refuse":
            command.add_argument("--reason", required=True, help="one of the consultation's")
            command.add_argument(
                "--duplicate-of",
                type=int,
                metavar="ID",
                help="with --reason already-exists: the accepted proposal it repeats",
            )
        _add_moderator(command)


def _add_moderator(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--as",
        dest="moderator",
        metavar="EMAIL",
        help="the moderator recorded in the history (default: cli:<your login name>)",
    )


def _actor(args: argparse.Namespace) -> Actor:
    login = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return Actor(args.moderator or f"cli:{login}", Source.CLI)


def _decision(args: argparse.Namespace) -> Decision:
    if args.action == "accept":
        if args.text is not None and len(args.ids) > 1:
            raise OrganiserError("cli.moderation_edit_one")
        return Accept(text=args.text, notify=not args.no_notify)
    if args.action == "refuse":
        return Refuse(args.reason, args.duplicate_of, notify=not args.no_notify)
    others: dict[str, Decision] = {
        "postpone": Postpone(),
        "archive": Archive(),
        "withdraw": Withdraw(),
    }
    return others[args.action]


def _flags(t: Translator, flags: tuple[Flag, ...]) -> str:
    return ", ".join(t(f"moderation.flag.{flag}") for flag in flags)


def _refusal(t: Translator, proposal_id: int, error: ModerationError) -> str:
    """Why the decision on `proposal_id` was refused, as the organiser reads it."""
    return t(f"cli.moderation_{error.kind}", **refusal_values(t, error, proposal_id))


def _as_dict(proposal: Served, now: datetime) -> dict[str, Any]:
    held = proposal.locked_until is not None and proposal.locked_until > now
    return {
        "id": proposal.id,
        "locale": proposal.locale,
        "text": proposal.text,
        "created_at": proposal.created_at.isoformat(),
        "age_seconds": int((now - proposal.created_at).total_seconds()),
        "locked_by": proposal.locked_by if held else None,
        "flags": [str(flag) for flag in proposal.flags],
        "lock_expires_at": proposal.locked_until.isoformat()
        if held and proposal.locked_until
        else None,
    }


async def run_moderation(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    """Run one `consult moderation` command; a refusal is a message and exit code 2."""
    try:
        if args.action in CHAT_ACTIONS:
            return await run_chat_command(settings, args, t)
        if args.action == "queue":
            return await _show_queue(settings, args, t)
        if args.action == "next":
            return await _serve_next(settings, args, t)
        if args.action == "notices":
            return await show_notices(settings, args, t)
        if args.action == "audit":
            return await _export_audit(settings, args)
        return await _decide(settings, args, t)
    except OrganiserError as problem:
        print(t(problem.msgid, **problem.values), file=sys.stderr)
        return USAGE_ERROR


async def _consultation_id(session: Any, slug: str) -> int:
    consultation = await consultation_by_slug(session, slug)
    if consultation is None or consultation.id is None:
        raise OrganiserError("cli.unknown_consultation", slug=slug)
    return consultation.id


AUDIT_COLUMNS = ("id", "at", "actor", "action", "target", "source", "detail")


async def _export_audit(settings: Settings, args: argparse.Namespace) -> int:
    """The whole audit log of a consultation on standard output, oldest first, read page by
    page; it names organisers and proposals, never a participant."""
    async with runtime(settings) as rt, rt.sessions() as session:
        consultation_id = await _consultation_id(session, args.slug)
        entries: list[AuditEntry] = []
        before: int | None = None
        while page := await audit_log(
            session, consultation_id, before=before, limit=AUDIT_PAGE_MAX
        ):
            entries.extend(page)
            before = page[-1].id
    rows = [audit_fields(entry) for entry in reversed(entries)]
    for row in rows:
        row["at"] = row["at"].isoformat()
    if args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=AUDIT_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "detail": json.dumps(row["detail"], ensure_ascii=False)})
    else:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    return 0


async def _show_queue(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    now = utc_now()
    async with runtime(settings) as rt, rt.sessions() as session:
        consultation_id = await _consultation_id(session, args.slug)
        page, total = await pending_proposals(
            session,
            consultation_id,
            limit=QUEUE_SHOWN,
            flag=Flag(args.flag) if args.flag else None,
            flagged_first=args.flagged_first,
        )
    if args.json:
        listed = {
            "slug": args.slug,
            "pending": total,
            "proposals": [_as_dict(p, now) for p in page],
        }
        print(json.dumps(listed, indent=2, ensure_ascii=False))
        return 0
    if not page:
        print(t("cli.moderation_queue_empty", slug=args.slug))
        return 0
    print(t("cli.moderation_queue_heading", slug=args.slug, count=t.number(total)))
    for proposal in page:
        age = format_timedelta(now - proposal.created_at, locale=t.locale)
        line = f"  #{proposal.id}  {age}  {proposal.locale}  {proposal.text}"
        if proposal.locked_by and proposal.locked_until and proposal.locked_until > now:
            until = short_datetime(t, proposal.locked_until)
            line += "  " + t("cli.moderation_queue_held", holder=proposal.locked_by, until=until)
        if proposal.flags:
            line += "  " + t("cli.moderation_flags", flags=_flags(t, proposal.flags))
        print(line)
    if total > len(page):
        print(t("cli.moderation_queue_more", count=t.number(total - len(page))))
    return 0


async def _serve_next(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    now = utc_now()
    order = QueueOrder.OLDEST
    if args.by_author:
        order = QueueOrder.AUTHOR_BATCH
    elif args.flagged_first:
        order = QueueOrder.FLAGGED
    actor = _actor(args)
    async with runtime(settings) as rt, rt.sessions() as session, session.begin():
        consultation_id = await _consultation_id(session, args.slug)
        served = await next_for(session, consultation_id, actor.organiser, now, order=order)
    if served is None:
        print(t("cli.moderation_queue_empty", slug=args.slug))
        return 0
    if args.json:
        print(json.dumps(_as_dict(served, now), indent=2, ensure_ascii=False))
        return 0
    assert served.locked_until is not None
    until = short_datetime(t, served.locked_until)
    print(t("cli.moderation_served", id=served.id, locale=served.locale, until=until))
    print(served.text)
    if served.flags:
        print(t("cli.moderation_flags", flags=_flags(t, served.flags)))
    return 0


async def _decide(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    decision = _decision(args)
    async with runtime(settings) as rt, rt.sessions() as session, session.begin():
        outcome = await decide_many(session, args.ids, decision, _actor(args), utc_now())
    refused = False
    for proposal_id, result in outcome.items():
        if isinstance(result, Decided):
            status = status_label(t, result.status)
            print(t("cli.moderation_decided", id=proposal_id, status=status))
        else:
            refused = True
            print(_refusal(t, proposal_id, result), file=sys.stderr)
    return USAGE_ERROR if refused else 0
