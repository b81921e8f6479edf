"""`consult organiser ...`: organiser accounts from a terminal (add, sign-in link, API token,
revoke, list).

Thin glue over `core.organisers`: each command is one transaction with its audit entry. The
API token is printed alone on standard output, so that a script can capture it; everything
else a person reads is in their language. Organisers' e-mails are not participant data.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlmodel import select

from bots.bootstrap import runtime
from bots.errors import OrganiserError
from bots.moderation_chat import add_chat_code_command, run_chat_code
from bots.settings import Settings
from core.flow import utc_now
from core.i18n import Translator
from core.models import Consultation
from core.moderation import Actor, Source, record_action
from core.organisers import (
    BadEmail,
    Role,
    UnknownConsultation,
    UnknownOrganiser,
    add_organiser,
    issue_token,
    organiser_by_email,
    organisers,
    revoke,
    sign_in_code,
)

USAGE_ERROR = 2
SIGN_IN_PATH = "/console/sign-in"

# A role as an organiser reads it (literal msgids, so the i18n test sees them).
_ROLE = {
    Role.ANALYST: "organiser.role.analyst",
    Role.MODERATOR: "organiser.role.moderator",
    Role.ADMIN: "organiser.role.admin",
}


def add_organiser_commands(commands: Any) -> None:
    """`consult organiser add|link|token|revoke|list`."""
    organiser = commands.add_parser("organiser", help="manage organisers' accounts and access")
    actions = organiser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add", help="give an organiser a role and print their one-time sign-in link"
    )
    add.add_argument("email", metavar="EMAIL")
    add.add_argument("--role", required=True, choices=[role.value for role in Role])
    add.add_argument(
        "--consultation", metavar="SLUG", help="the consultation (default: every consultation)"
    )
    link = actions.add_parser("link", help="print a new one-time sign-in link for the console")
    link.add_argument("email", metavar="EMAIL")
    token = actions.add_parser("token", help="print a new API token, alone, for scripts")
    token.add_argument("email", metavar="EMAIL")
    revoked = actions.add_parser(
        "revoke", help="revoke an organiser: API tokens, sign-in links and sessions stop working"
    )
    revoked.add_argument("email", metavar="EMAIL")
    actions.add_parser("list", help="the organisers and their roles")
    add_chat_code_command(actions)


def sign_in_link(settings: Settings, code: str) -> str:
    """The console's one-time sign-in page for `code` at the server's public address.

    The code is in the fragment (after `#`), which browsers never send: no access log, proxy
    or history of requests ever holds it. The page's script puts it in the sign-in form.
    """
    return f"{settings.public_url.rstrip('/')}{SIGN_IN_PATH}#code={quote(code, safe='')}"


def _actor() -> Actor:
    login = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return Actor(f"cli:{login}", Source.CLI)


async def run_organiser(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    """Run one `consult organiser` command; a refusal is a message and exit code 2."""
    try:
        if args.action == "list":
            return await _list(settings, t)
        if args.action == "chat-code":
            return await run_chat_code(settings, args, t)
        if args.action == "add":
            return await _add(settings, args, t)
        if args.action == "link":
            return await _link(settings, args, t)
        if args.action == "token":
            return await _token(settings, args, t)
        return await _revoke(settings, args, t)
    except BadEmail:
        print(t("cli.organiser_bad_email", email=args.email), file=sys.stderr)
    except UnknownConsultation:
        print(t("cli.unknown_consultation", slug=args.consultation), file=sys.stderr)
    except UnknownOrganiser:
        print(t("cli.organiser_unknown", email=args.email.strip()), file=sys.stderr)
    except OrganiserError as problem:
        print(t(problem.msgid, **problem.values), file=sys.stderr)
    return USAGE_ERROR


async def _add(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    now = utc_now()
    role = Role(args.role)
    async with runtime(settings) as rt, rt.sessions() as session, session.begin():
        view, code = await add_organiser(session, args.email, role, args.consultation, now=now)
        consultation_id = None
        if args.consultation is not None:
            query = select(Consultation.id).where(Consultation.slug == args.consultation)
            consultation_id = (await session.exec(query)).one()
        await record_action(
            session,
            _actor(),
            "organiser.add",
            f"organiser:{view.id}",
            consultation_id,
            now,
            {"email": view.email, "role": role.value},
        )
    scope = args.consultation or t("cli.organiser_every_consultation")
    print(t("cli.organiser_added", email=view.email, role=t(_ROLE[role]), scope=scope))
    print(t("cli.organiser_link_heading"))
    print(sign_in_link(settings, code))
    return 0


async def _link(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    now = utc_now()
    async with runtime(settings) as rt, rt.sessions() as session, session.begin():
        code = await sign_in_code(session, args.email, now=now)
        await _record(session, "organiser.link", args.email, now)
    print(t("cli.organiser_link_heading"))
    print(sign_in_link(settings, code))
    return 0


async def _token(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    now = utc_now()
    async with runtime(settings) as rt, rt.sessions() as session, session.begin():
        token = await issue_token(session, args.email, now=now)
        await _record(session, "organiser.token", args.email, now)
    print(token)  # alone: `TOKEN=$(consult organiser token ana@example.org)`
    print(t("cli.organiser_token_once"), file=sys.stderr)
    return 0


async def _revoke(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    now = utc_now()
    async with runtime(settings) as rt, rt.sessions() as session, session.begin():
        found = await organiser_by_email(session, args.email)
        tokens = await revoke(session, args.email, now=now)
        assert found is not None  # revoke raised otherwise
        await record_action(
            session,
            _actor(),
            "organiser.revoke",
            f"organiser:{found.id}",
            None,
            now,
            {"email": found.email, "tokens": tokens},
        )
    print(t("cli.organiser_revoked", email=found.email, tokens=t.number(tokens)))
    return 0


async def _record(session: Any, action: str, email: str, now: datetime) -> None:
    """Write an action on the (existing, not revoked) organiser `email` to the audit log."""
    found = await organiser_by_email(session, email)
    assert found is not None  # the action raised UnknownOrganiser otherwise
    target = f"organiser:{found.id}"
    await record_action(session, _actor(), action, target, None, now, {"email": found.email})


async def _list(settings: Settings, t: Translator) -> int:
    async with runtime(settings) as rt, rt.sessions() as session:
        found = await organisers(session)
        slugs = {c.id: c.slug for c in (await session.exec(select(Consultation))).all()}
    if not found:
        print(t("cli.organiser_none"))
        return 0
    for organiser in found:
        grants = ", ".join(
            t(
                "cli.organiser_grant",
                role=t(_ROLE[grant.role]),
                scope=t("cli.organiser_every_consultation")
                if grant.consultation_id is None
                else slugs.get(grant.consultation_id, str(grant.consultation_id)),
            )
            for grant in organiser.grants
        )
        print(f"{organiser.email}  {grants}")
    return 0
