"""`consult <channel> link SLUG [--source TAG] [--qr FILE]`: what every channel's link does."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from adapters.links import BadLink, deep_link_payload, write_qr_png
from bots.bootstrap import runtime
from bots.settings import Settings
from core.definitions import consultation_by_slug
from core.i18n import Translator

USAGE_ERROR = 2

# The channel's link for a payload, or None once it has said (on stderr) why there is none.
LinkMaker = Callable[[str], Awaitable[str | None]]


def add_link_command(actions: Any) -> None:
    link = actions.add_parser("link", help="print the deep link that opens a consultation")
    link.add_argument("slug", metavar="SLUG")
    link.add_argument("--source", help="a recruitment tag, e.g. newspaper (A-Z a-z 0-9 _ -)")
    link.add_argument("--qr", type=Path, metavar="FILE", help="also write it as a QR code (PNG)")


async def show_link(
    settings: Settings, args: argparse.Namespace, t: Translator, make_link: LinkMaker
) -> int:
    """Print the link to consultation `args.slug` (which must exist), and its QR code."""
    try:
        payload = deep_link_payload(args.slug, args.source)
    except BadLink as problem:
        print(t("cli.link_bad_payload", payload=problem.payload), file=sys.stderr)
        return USAGE_ERROR
    async with runtime(settings) as rt, rt.sessions() as session:
        if await consultation_by_slug(session, args.slug) is None:
            print(t("cli.unknown_consultation", slug=args.slug), file=sys.stderr)
            return USAGE_ERROR
    url = await make_link(payload)
    if url is None:
        return USAGE_ERROR
    print(url)
    if args.qr:
        write_qr_png(url, args.qr)
        print(t("cli.link_qr_written", path=args.qr), file=sys.stderr)
    return 0
