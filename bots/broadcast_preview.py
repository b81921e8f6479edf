"""`consult broadcast preview`: a broadcast as its recipients would get it, before it is sent.

The audience's size by channel and language, each language's text as each channel renders it
(the adapters' own pure renderers, so a text too long for WhatsApp's button message shows as
WhatsApp shows it), and what the platforms will ask: the days WhatsApp's messaging tier needs
for those outside the 24-hour window, the Stars a paid Telegram broadcast costs. Counts only:
never a recipient.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as rows_of
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from adapters.slack.render import broadcast_post
from adapters.whatsapp.render import broadcast_message
from bots.bootstrap import runtime
from bots.errors import OrganiserError
from bots.settings import Settings
from core.broadcasts.audience import (
    AudienceExpr,
    audience_size,
    outside_target,
    parse_audience,
    participant_recipients,
    resolve_audience,
    validate_audience,
)
from core.broadcasts.messages import load_message_file, text_for
from core.definitions import consultation_by_slug
from core.flow import utc_now
from core.i18n import Translator
from core.models import ChannelIdentity, Consultation

# Telegram's paid broadcasts: past the free ~30 messages a second, each message sent with
# allow_paid_broadcast costs 0.1 Star, up to 1,000 a second
# (https://core.telegram.org/bots/faq#how-can-i-message-all-of-my-bot-39s-subscribers-at-once,
# https://core.telegram.org/bots/api#sendmessage, `allow_paid_broadcast`).
TELEGRAM_STARS_PER_PAID_MESSAGE = 0.1
TELEGRAM_FREE_PER_SECOND = 30
# WhatsApp's 24-hour customer service window: past it, only templates reach a person, and
# those count in the business's messaging tier (unique people per 24 hours).
WHATSAPP_WINDOW = timedelta(hours=24)


async def _outside_window(
    session: AsyncSession, consultation: Consultation, expression: AudienceExpr, now: datetime
) -> int:
    """How many of the audience's WhatsApp participants are outside the 24-hour window: only a
    template reaches them, and they count in the business's messaging tier."""
    chosen = participant_recipients(consultation, expression, now).subquery()
    query = (
        rows_of(func.count())
        .select_from(chosen)
        .join(
            ChannelIdentity,
            (col(ChannelIdentity.participant_id) == chosen.c.participant_id)
            & (col(ChannelIdentity.channel) == chosen.c.channel),
        )
        .where(
            chosen.c.channel == "whatsapp",
            (col(ChannelIdentity.last_seen_at).is_(None))
            | (col(ChannelIdentity.last_seen_at) < now - WHATSAPP_WINDOW),
        )
    )
    connection = await session.connection()
    return int((await connection.execute(query)).scalar_one())


def _by(t: Translator, counts: Mapping[str, int]) -> str:
    return ", ".join(f"{key} {t.number(n)}" for key, n in sorted(counts.items()))


def telegram_stars(messages: int, paid_per_second: float) -> float:
    """What a paid Telegram broadcast of `messages` costs at most, in Stars: 0.1 each past the
    free 30 a second, sent at `paid_per_second`."""
    seconds = math.ceil(messages / paid_per_second) if messages else 0
    charged = max(0, messages - TELEGRAM_FREE_PER_SECOND * seconds)
    return round(charged * TELEGRAM_STARS_PER_PAID_MESSAGE, 1)


def whatsapp_days(outside: int, tier: str) -> int:
    """Days a broadcast takes to reach `outside` people at the messaging tier (unique people
    outside the window per 24 hours)."""
    if outside == 0 or tier == "unlimited":
        return 1 if outside else 0
    return math.ceil(outside / int(tier))


async def show_preview(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    """`consult broadcast preview SLUG --message FILE --audience EXPR [--paid]`: who would get
    it and what each would read, on which channel, at what cost; nothing is written."""
    now = utc_now()
    async with runtime(settings) as rt, rt.sessions() as session:
        consultation = await consultation_by_slug(session, args.slug)
        if consultation is None or consultation.id is None:
            raise OrganiserError("cli.unknown_consultation", slug=args.slug)
        content = load_message_file(args.message, consultation)
        expression = parse_audience(args.audience)
        validate_audience(consultation, expression)
        size = await audience_size(session, consultation, expression, now)
        outside = 0
        if outside_target(expression) is None:
            resolved = await resolve_audience(session, consultation, expression, now)
            outside = await _outside_window(session, consultation, resolved, now)
        elif size.outside is not None and size.outside.kind == "whatsapp-list":
            outside = size.total  # numbers the bot has never talked to
    print(t("cli.broadcast_preview_size", slug=args.slug, total=t.number(size.total)))
    if size.outside is not None and size.outside.kind != "whatsapp-list":
        print(t("cli.broadcast_preview_outside", kind=size.outside.kind))
    if size.by_channel:
        print(t("cli.broadcast_preview_by_channel", counts=counts_by(t, size.by_channel)))
    if size.by_locale:
        print(t("cli.broadcast_preview_by_locale", counts=counts_by(t, size.by_locale)))
    for locale in consultation.locales:
        text = text_for(content.texts, locale, consultation.default_locale)
        print(t("cli.broadcast_preview_text", locale=locale))
        _indented(text)
        label = Translator(locale)("broadcast.button")
        for channel in sorted(size.by_channel):
            shown, buttons = rendered(channel, text, content.button, label)
            if shown != text:  # the channel cuts or changes it: show what it shows
                print(t("cli.broadcast_preview_rendered", channel=channel))
                _indented(shown)
            if buttons:
                print(
                    t("cli.broadcast_preview_buttons", channel=channel, labels=", ".join(buttons))
                )
    if outside:
        days = whatsapp_days(outside, settings.whatsapp_tier)
        print(
            t(
                "cli.broadcast_preview_whatsapp",
                outside=t.number(outside),
                tier=settings.whatsapp_tier,
                days=t.number(days),
            )
        )
        if content.template is None:
            print(t("cli.broadcast_preview_no_template"))
    telegram = size.by_channel.get("telegram", 0)
    if args.paid and telegram:
        stars = telegram_stars(telegram, settings.telegram_paid_broadcast_per_second)
        print(t("cli.broadcast_preview_stars", stars=t.number(stars), count=t.number(telegram)))
    return 0


def counts_by(t: Translator, counts: Mapping[str, int]) -> str:
    """`fr 12, en 3`: counts by key, numbers in the organiser's locale."""
    return ", ".join(f"{key} {t.number(n)}" for key, n in sorted(counts.items()))


def _indented(text: str) -> None:
    for line in text.splitlines() or [""]:
        print(f"    {line}")


def rendered(channel: str, text: str, button: bool, label: str) -> tuple[str, list[str]]:
    """What a recipient on `channel` reads of `text`, and the labels of its buttons, as the
    channel's adapter renders a broadcast (a placeholder payload: only its presence counts)."""
    payload = "preview" if button else None
    if channel == "whatsapp":
        message: dict[str, Any] = broadcast_message(text, payload, label)
        if message["type"] == "interactive":
            interactive = message["interactive"]
            titles = [b["reply"]["title"] for b in interactive["action"]["buttons"]]
            return str(interactive["body"]["text"]), titles
        return str(message["text"]["body"]), []
    if channel == "slack":
        post = broadcast_post(text, payload, label)
        labels = [
            str(element["text"]["text"])
            for block in post["blocks"]
            if block.get("type") == "actions"
            for element in block["elements"]
        ]
        return text, labels  # Slack shows the text as typed (escaped for mrkdwn only)
    if channel == "telegram":  # as typed (HTML-escaped), with a URL button to the deep link
        return text, [label] if button else []
    return text, []
