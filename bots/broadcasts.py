"""`consult broadcast ...`: compose, schedule, follow and control broadcasts from a terminal.

Thin glue over `core.broadcasts`: each command is one core call in one transaction; what an
organiser got wrong (a text, an audience, a date, a cron, an id) is said in their language on
standard error with exit code 2, and nothing is written. Nothing printed names a recipient:
counts, our ids and the organiser's own texts only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from bots.bootstrap import runtime
from bots.broadcast_input import Invalid
from bots.broadcast_preview import counts_by, show_preview
from bots.broadcast_test import check_locale, parse_to, send_test
from bots.contacts import ContactsError, import_contacts
from bots.errors import OrganiserError
from bots.scheduler import next_fire
from bots.settings import Settings
from core.broadcasts.audience import (
    AudienceError,
    AudienceExpr,
    parse_audience,
    validate_audience,
)
from core.broadcasts.control import BroadcastStateError, cancel, pause, resume
from core.broadcasts.messages import BroadcastContent, MessageError, load_message_file
from core.broadcasts.planning import ScheduleError, as_actor, create_broadcast
from core.broadcasts.stats import broadcast_stats, list_broadcasts
from core.definitions import consultation_by_slug, settings_of
from core.flow import utc_now
from core.i18n import Translator
from core.ids import ID_MAX
from core.models import Broadcast, Consultation

USAGE_ERROR = 2
FOLLOW_EVERY = 1.0  # seconds between two readings of `show --follow`


def add_broadcast_commands(commands: Any) -> None:
    """`consult broadcast create|list|show|pause|resume|cancel|preview|test|contacts`."""
    broadcast = commands.add_parser(
        "broadcast", help="send a consultation's participants a message, now or on a schedule"
    )
    actions = broadcast.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="schedule a broadcast; prints its id alone on standard output"
    )
    create.add_argument("slug", metavar="SLUG")
    _add_message_and_audience(create)
    create.add_argument(
        "--at",
        required=True,
        metavar="WHEN",
        help="'now', an ISO 8601 time with its offset (2026-03-02T10:00+01:00), or "
        "'YYYY-MM-DD HH:MM' in the consultation's time zone",
    )
    create.add_argument(
        "--every",
        metavar="CRON",
        help="repeat on a crontab schedule in the consultation's time zone, e.g. "
        "'0 10 * * 1' (Mondays at 10:00; 0 and 7 are Sunday)",
    )
    listed = actions.add_parser("list", help="a consultation's broadcasts, newest first")
    listed.add_argument("slug", metavar="SLUG")
    listed.add_argument("--json", action="store_true", help="print them as JSON")
    show = actions.add_parser("show", help="a broadcast's progress and counts")
    show.add_argument("id", type=_broadcast_id, metavar="ID")
    show.add_argument("--json", action="store_true", help="print the counts as JSON")
    show.add_argument(
        "--follow",
        action="store_true",
        help="draw its progress on standard error until nothing is queued",
    )
    for name, what in (
        ("pause", "hold a broadcast's messages not yet sent"),
        ("resume", "send a paused broadcast's messages again"),
        ("cancel", "stop a broadcast for good: what is not sent is not sent"),
    ):
        control = actions.add_parser(name, help=what)
        control.add_argument("id", type=_broadcast_id, metavar="ID")
    preview = actions.add_parser(
        "preview", help="who a broadcast would reach and what each would read, sending nothing"
    )
    preview.add_argument("slug", metavar="SLUG")
    _add_message_and_audience(preview)
    tried = actions.add_parser(
        "test", help="send the message to your own address on one channel, as recipients get it"
    )
    tried.add_argument("slug", metavar="SLUG")
    tried.add_argument(
        "--message",
        required=True,
        type=Path,
        metavar="FILE.yaml",
        help="the texts per locale (text: {fr: ..., en: ...}), optionally button: true",
    )
    tried.add_argument(
        "--to",
        required=True,
        metavar="CHANNEL:ADDRESS",
        help="your own address: telegram:CHAT_ID, whatsapp:+33..., slack:U0... (never stored)",
    )
    tried.add_argument("--locale", help="read it as recipients in this locale do (the default's)")
    contacts = actions.add_parser("contacts", help="people the bot has not met yet")
    contact_actions = contacts.add_subparsers(dest="contacts_action", required=True)
    imported = contact_actions.add_parser(
        "import",
        help="import a WhatsApp list from a CSV file (columns phone, opted_in, locale)",
    )
    imported.add_argument("slug", metavar="SLUG")
    imported.add_argument("list_name", metavar="LIST")
    imported.add_argument("file", type=Path, metavar="FILE.csv")


def _add_message_and_audience(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--message",
        required=True,
        type=Path,
        metavar="FILE.yaml",
        help="the texts per locale (text: {fr: ..., en: ...}), optionally button: true",
    )
    parser.add_argument(
        "--audience",
        required=True,
        metavar="EXPR",
        help="who receives it, e.g. 'all', 'locale:fr and not proposed' (see the README)",
    )
    parser.add_argument(
        "--paid",
        action="store_true",
        help="Telegram: send up to 1,000 messages a second, paid in Stars (see preview)",
    )


def _broadcast_id(text: str) -> int:
    """An id as typed; one no broadcast can have is said as unknown, not as a usage error."""
    if not (text.isascii() and text.isdecimal()):
        raise argparse.ArgumentTypeError(f"not a broadcast id: {text!r}")
    return int(text)


async def run_broadcast(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    """Run one `consult broadcast` command; a refusal is a message and exit code 2."""
    try:
        if args.action == "create":
            return await _create(settings, args, t)
        if args.action == "list":
            return await _list(settings, args, t)
        if args.action == "show":
            return await _show(settings, args, t)
        if args.action == "preview":
            return await show_preview(settings, args, t)
        if args.action == "contacts":
            return await _import_contacts(settings, args, t)
        if args.action == "test":
            return await _send_test(settings, args, t)
        return await _control(settings, args, t)
    except Invalid as problem:  # a test's address or locale: said without the address
        print(t(problem.msgid, **problem.values), file=sys.stderr)
        return USAGE_ERROR
    except AudienceError as problem:
        print(t(problem.msgid, **problem.values), file=sys.stderr)
        if problem.position:  # the expression, and a caret under the fault
            print(f"  {args.audience}\n  {' ' * (problem.position - 1)}^", file=sys.stderr)
        return USAGE_ERROR
    except (OrganiserError, MessageError, ScheduleError, BroadcastStateError) as problem:
        values = getattr(problem, "values", None) or {}
        print(t(problem.msgid, **values), file=sys.stderr)
        return USAGE_ERROR


def _actor() -> str:
    login = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return f"cli:{login}"


async def _consultation(session: AsyncSession, slug: str) -> Consultation:
    consultation = await consultation_by_slug(session, slug)
    if consultation is None or consultation.id is None:
        raise OrganiserError("cli.unknown_consultation", slug=slug)
    return consultation


async def _broadcast(session: AsyncSession, broadcast_id: int) -> Broadcast:
    found = await session.get(Broadcast, broadcast_id) if broadcast_id <= ID_MAX else None
    if found is None:
        raise OrganiserError("cli.broadcast_unknown", id=broadcast_id)
    return found


def _message(path: Path, consultation: Consultation) -> BroadcastContent:
    return load_message_file(path, consultation)


def _audience(consultation: Consultation, text: str) -> AudienceExpr:
    expression = parse_audience(text)
    validate_audience(consultation, expression)
    return expression


_LOCAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?")


def first_moment(when: str, time_zone: str, now: datetime) -> datetime:
    """`--at`: 'now', an ISO 8601 time with its offset, or a wall-clock time in the
    consultation's zone; in UTC. OrganiserError for anything else (whether it is in the past
    is the core's to say)."""
    text = when.strip()
    if text.lower() == "now":
        return now
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise OrganiserError("cli.broadcast_bad_when", when=when) from None
    if moment.tzinfo is None:
        if not _LOCAL_TIME.fullmatch(text):  # a date alone: at what time?
            raise OrganiserError("cli.broadcast_bad_when", when=when)
        moment = moment.replace(tzinfo=ZoneInfo(time_zone))
    return moment.astimezone(UTC)


async def _create(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    now = utc_now()
    async with runtime(settings) as rt, rt.sessions() as session, session.begin():
        consultation = await _consultation(session, args.slug)
        time_zone = settings_of(consultation).broadcasts.time_zone
        content = _message(args.message, consultation)
        _audience(consultation, args.audience)
        first_at = first_moment(args.at, time_zone, now)
        created = await create_broadcast(
            session,
            consultation,
            content,
            args.audience,
            first_at,
            args.every,
            next_fire,
            _actor(),
            now,
            paid=args.paid,
        )
        broadcast_id = created.id
    print(broadcast_id)  # alone: `ID=$(consult broadcast create ...)`
    return 0


def _plain(value: Any) -> Any:
    """A core view as JSON values (dataclasses, datetimes, enums)."""
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _when(moment: datetime | None, time_zone: str) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(ZoneInfo(time_zone)).strftime("%Y-%m-%d %H:%M")


async def _list(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    async with runtime(settings) as rt, rt.sessions() as session:
        consultation = await _consultation(session, args.slug)
        assert consultation.id is not None
        views = await list_broadcasts(session, consultation.id)
    time_zone = settings_of(consultation).broadcasts.time_zone
    if args.json:
        print(json.dumps(_plain(views), indent=2, ensure_ascii=False))
        return 0
    if not views:
        print(t("cli.broadcast_none", slug=args.slug))
        return 0
    print(t("cli.broadcast_list_heading", slug=args.slug, zone=time_zone))
    for view in views:
        plain = _plain(view)
        upcoming = _when(getattr(view, "next_run_at", None), time_zone)
        every = plain.get("every") or "-"
        state = _said(t, _STATES, plain["state"])
        print(f"  #{plain['id']}  {state}  {plain['audience']}  {every}  {upcoming}")
    return 0


def _counts(stats: Any) -> dict[str, Any]:
    plain = _plain(stats)
    return dict(plain) if isinstance(plain, dict) else {"counts": plain}


async def _read_stats(
    settings: Settings, broadcast_id: int
) -> tuple[Broadcast, dict[str, Any], Consultation]:
    async with runtime(settings) as rt, rt.sessions() as session:
        found = await _broadcast(session, broadcast_id)
        consultation = await session.get(Consultation, found.consultation_id)
        assert consultation is not None
        stats = await broadcast_stats(session, broadcast_id, utc_now())
    return found, _counts(stats), consultation


async def _show(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    found, counts, consultation = await _read_stats(settings, args.id)
    slug, time_zone = consultation.slug, settings_of(consultation).broadcasts.time_zone
    if args.follow:
        counts = await _follow(settings, found, counts, t)
    if args.json:
        shown = {
            "id": found.id,
            "consultation": slug,
            "state": found.state,
            "audience": found.audience,
            "every": found.every,
            "next_run_at": _plain(found.next_run_at),
            **counts,
        }
        print(json.dumps(shown, indent=2, ensure_ascii=False))
        return 0
    state = _said(t, _STATES, found.state)
    print(t("cli.broadcast_show", id=found.id, slug=slug, state=state, audience=found.audience))
    if found.every:
        upcoming = _when(found.next_run_at, time_zone)
        print(t("cli.broadcast_every", every=found.every, next=upcoming, zone=time_zone))
    print(f"  {_figures(t, counts)}")
    if counts.get("skipped"):
        print(t("cli.broadcast_skipped", counts=counts_by(t, counts["skipped"])))
    print(t("cli.broadcast_came_back", count=t.number(int(counts.get("came_back", 0)))))
    for channel, figures in sorted((counts.get("by_channel") or {}).items()):
        print(f"  {channel}: {_figures(t, figures)}")
    return 0


# What an organiser reads of a broadcast's state and figures (literal msgids for the i18n test).
_STATES = {
    "scheduled": "cli.broadcast_state.scheduled",
    "paused": "cli.broadcast_state.paused",
    "cancelled": "cli.broadcast_state.cancelled",
    "done": "cli.broadcast_state.done",
}
_FIGURES = {
    "queued": "cli.broadcast_figure.queued",
    "claimed": "cli.broadcast_figure.claimed",
    "sent": "cli.broadcast_figure.sent",
    "failed": "cli.broadcast_figure.failed",
    "blocked": "cli.broadcast_figure.blocked",
    "unknown": "cli.broadcast_figure.unknown",
    "waiting": "cli.broadcast_figure.waiting",
    "cancelled": "cli.broadcast_figure.cancelled",
}


def _said(t: Translator, labels: Mapping[str, str], value: str) -> str:
    return t(labels[value]) if value in labels else value


def _figures(t: Translator, counts: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{t(msgid)} {t.number(int(counts.get(name, 0) or 0))}" for name, msgid in _FIGURES.items()
    )


def _remaining(counts: Mapping[str, Any]) -> int:
    return int(counts.get("queued", 0) or 0) + int(counts.get("claimed", 0) or 0)


def _settled(counts: Mapping[str, Any]) -> int:
    names = ("sent", "failed", "blocked", "unknown", "waiting", "cancelled")
    return sum(int(counts.get(name, 0) or 0) for name in names)


async def _follow(
    settings: Settings,
    found: Broadcast,
    counts: dict[str, Any],
    t: Translator,
    *,
    pause: Callable[[float], Any] = asyncio.sleep,
) -> dict[str, Any]:
    """Redraw the progress on standard error until nothing is queued or being sent, and no
    occurrence is due without being planned yet (a broadcast created `--at now` a moment
    ago: the scheduler plans it within CONSULT_SCHEDULER_EVERY_SECONDS); the last counts."""
    assert found.id is not None
    draw = progress_bar(t("cli.broadcast_progress", id=found.id))
    while True:
        done = _settled(counts)
        draw(done, done + _remaining(counts))
        upcoming = found.next_run_at if found.state == "scheduled" else None
        if _remaining(counts) == 0 and (upcoming is None or upcoming > utc_now()):
            return counts
        await pause(FOLLOW_EVERY)
        found, counts, _ = await _read_stats(settings, found.id)


def progress_bar(label: str, stream: Any = None) -> Callable[[int, int], None]:
    """A bar on standard error, redrawn in place on a terminal; elsewhere (a log, a pipe) a
    line each time the share passes a tenth. Unlike an import's, the total may grow (a run
    is planned while the bar is drawn), so the share is recomputed, never assumed to rise."""
    out = stream or sys.stderr
    interactive = out.isatty()
    last_tenth = [-1]

    def show(done: int, total: int) -> None:
        share = done / total if total else 1.0
        if interactive:
            filled = "#" * int(share * 30)
            print(f"\r{label} [{filled:<30}] {done}/{total}", end="", file=out, flush=True)
            if done >= total:
                print(file=out)
        elif int(share * 10) != last_tenth[0]:
            last_tenth[0] = int(share * 10)
            print(f"{label} {share:.0%} ({done}/{total})", file=out, flush=True)

    return show


async def _control(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    change = {"pause": pause, "resume": resume, "cancel": cancel}[args.action]
    said = {
        "pause": "cli.broadcast_paused",
        "resume": "cli.broadcast_resumed",
        "cancel": "cli.broadcast_cancelled",
    }
    async with runtime(settings) as rt, rt.sessions() as session, session.begin():
        await _broadcast(session, args.id)
        await change(session, args.id, _actor(), utc_now())
    print(t(said[args.action], id=args.id))
    return 0


async def _send_test(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    """`broadcast test`: 0 if the platform took the message, 1 if it did not (said why)."""
    to = parse_to(args.to)
    async with runtime(settings) as rt:
        async with rt.sessions() as session:
            consultation = await _consultation(session, args.slug)
        content = _message(args.message, consultation)
        locale = check_locale(consultation, args.locale)
        outcome = await send_test(
            rt, settings, consultation, content, to, locale, as_actor(_actor())
        )
    said = t(outcome.msgid, **outcome.values)
    print(said, file=sys.stdout if outcome.sent else sys.stderr)
    return 0 if outcome.sent else 1


async def _import_contacts(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    async with runtime(settings) as rt, rt.sessions() as session, session.begin():
        consultation = await _consultation(session, args.slug)
        try:
            summary = await import_contacts(
                session,
                consultation,
                args.list_name,
                args.file,
                settings.resolved_secret(),
                utc_now(),
            )
        except ContactsError as problem:
            print(t("cli.contacts_bad_file", file=str(args.file)), file=sys.stderr)
            for line, msgid, values in problem.lines:
                print(
                    t("cli.contacts_bad_line", line=line, problem=t(msgid, **values)),
                    file=sys.stderr,
                )
            return USAGE_ERROR
    print(
        t(
            "cli.contacts_imported",
            list=args.list_name,
            slug=args.slug,
            added=t.number(summary.added),
            updated=t.number(summary.updated),
            opted_in=t.number(summary.opted_in),
        )
    )
    return 0
