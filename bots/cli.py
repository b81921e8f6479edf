"""The `consult` command: the demo, loading consultations, migrating the database."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError

from adapters.terminal import TerminalSession
from bots.bootstrap import runtime
from bots.definitions_file import read_definition
from bots.demo import seed_demo
from bots.settings import Settings
from core.definitions import DefinitionError, upsert_consultation
from core.flow import utc_now
from core.i18n import FALLBACK, Translator, available_locales, negotiate

USAGE_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consult", description="Run consultations inside messaging apps."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="seed the demo consultation and chat with it in this terminal"
    )
    demo.add_argument("--user", help="who you are in the demo (default: your login name)")
    demo.add_argument("--locale", help="your language hint, e.g. fr or en (default: from LANG)")
    demo.add_argument("--link", default="", help="a deep-link payload, e.g. culture__newspaper")

    consultation = commands.add_parser("consultation", help="manage consultations")
    actions = consultation.add_subparsers(dest="action", required=True, metavar="ACTION")
    load = actions.add_parser("load", help="create or update a consultation from a YAML file")
    load.add_argument("file", type=Path)

    db = commands.add_parser("db", help="manage the database")
    db_actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    db_actions.add_parser("upgrade", help="apply pending migrations")
    return parser


def _locale_from_environment() -> str | None:
    """The user's language as POSIX says: the first of LC_ALL, LC_MESSAGES, LANG that is set."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "").split(".", 1)[0]
        if value:
            return None if value in ("C", "POSIX") else value
    return None


def _organiser_translator() -> Translator:
    return Translator(negotiate(_locale_from_environment(), available_locales()) or FALLBACK)


async def _lines(interactive: bool) -> AsyncIterator[str]:
    while True:
        if interactive:
            try:
                line = await asyncio.to_thread(input, "> ")
            except EOFError:
                return
        else:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return
        yield line


async def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    async with runtime(settings) as rt:
        report = await seed_demo(rt.sessions, settings.resolved_secret(), utc_now())
        if report.simulated_votes:
            t = _organiser_translator()
            ready = t(
                "cli.demo_ready",
                slug=report.slug,
                proposals=report.proposals,
                votes=report.simulated_votes,
            )
            print(ready, file=sys.stderr)
        interactive = sys.stdin.isatty()
        session = TerminalSession(
            rt.flow,
            lambda text: print(text, end="", flush=True),
            user_id=args.user or os.environ.get("USER") or "demo",
            locale_hint=args.locale or _locale_from_environment(),
            echo=not interactive,
        )
        await session.run(_lines(interactive), payload=args.link)
    return 0


async def load_consultation(settings: Settings, path: Path) -> int:
    spec = read_definition(path)
    async with runtime(settings) as rt, rt.sessions() as session, session.begin():
        consultation, created = await upsert_consultation(session, spec, utc_now())
    msgid = "cli.consultation_created" if created else "cli.consultation_updated"
    t = _organiser_translator()
    print(t(msgid, slug=consultation.slug, status=consultation.status))
    return 0


async def upgrade_database(settings: Settings) -> int:
    async with runtime(settings):
        pass
    t = _organiser_translator()
    print(t("cli.database_ready"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    settings = Settings()
    t = _organiser_translator()
    try:
        if args.command == "demo":
            return asyncio.run(run_demo(settings, args))
        if args.command == "consultation":
            return asyncio.run(load_consultation(settings, args.file))
        return asyncio.run(upgrade_database(settings))
    except DefinitionError as error:
        print(t("cli.invalid_definition"), file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return USAGE_ERROR
    except ArgumentError:
        print(t("cli.bad_database_url"), file=sys.stderr)
        return USAGE_ERROR
    except (OperationalError, InterfaceError, OSError) as error:
        print(t("cli.database_unreachable", error=error), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
