"""An organiser's test message: the broadcast they are composing, sent at once to their OWN
address on one channel, as a recipient speaking the chosen locale would get it (the text in
that locale, the button, the channel's rendering), before the broadcast exists.

It is not a participant's message, so it skips the outbox: the channel is opened from the
settings for the call (`bots.broadcast_worker.channel_from_settings`) and its `broadcast()`
sends it once. The address is the organiser's: never stored, never logged, never said back;
the audit log records the channel, the locale and what became of it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from sqlmodel import select

from bots.bootstrap import Runtime
from bots.broadcast_input import Invalid
from bots.broadcast_worker import channel_from_settings
from bots.contacts import e164_digits
from bots.settings import Settings
from core.broadcasts.delivery import TEMPLATE_PARAMETER_LENGTH, BroadcastOutgoing, template_for
from core.broadcasts.messages import BroadcastContent, text_for
from core.definitions import settings_of
from core.identity import identity_hash
from core.models import ChannelIdentity, Consultation
from core.moderation import Actor
from core.moderation.history import record_action
from core.notices import Handover

log = logging.getLogger("consult.broadcasts")
CHANNELS = ("telegram", "whatsapp", "slack")
TO_MAX = 300
NAMES = {"telegram": "Telegram", "whatsapp": "WhatsApp", "slack": "Slack"}  # as people write them
_TELEGRAM = re.compile(r"-?[0-9]{1,20}")
_SLACK = re.compile(r"(?:(T[A-Z0-9]{2,20}):)?([UW][A-Z0-9]{2,20})")

# What became of a test, in words (literal msgids for the i18n test).
SAID = {
    Handover.SENT: "broadcast.test.sent",
    Handover.REFUSED: "broadcast.test.refused",
    Handover.UNREACHABLE: "broadcast.test.unreachable",
    Handover.RETRY: "broadcast.test.retry",
    Handover.UNKNOWN: "broadcast.test.unknown",
    Handover.NEEDS_TEMPLATE: "broadcast.test.needs_template",
}

_BAD_ADDRESS = {
    "telegram": "broadcast.test.bad_address.telegram",
    "whatsapp": "broadcast.test.bad_address.whatsapp",
    "slack": "broadcast.test.bad_address.slack",
}
# Every msgid a test can be answered with (tests check both catalogues hold them).
MSGIDS = (
    *SAID.values(),
    *_BAD_ADDRESS.values(),
    "broadcast.test.bad_channel",
    "broadcast.test.unknown_locale",
    "broadcast.test.not_configured",
)


@dataclass(frozen=True)
class OwnAddress:
    """Where a test goes: a channel and the organiser's address there, as its `broadcast()`
    reads it (a Telegram chat id, a WhatsApp number's digits, "{team}:{user}" on Slack)."""

    channel: str
    address: str = field(repr=False)
    user_id: str = field(repr=False)  # as the channel identifies the person (their hash)


def parse_to(to: object) -> OwnAddress:
    """`CHANNEL:ADDRESS` (telegram:CHAT_ID, whatsapp:+33..., slack:U0... or slack:T0...:U0...);
    `Invalid` on `to`, saying the expected form and never repeating the address."""
    if not isinstance(to, str) or len(to) > TO_MAX:
        raise Invalid("to", "broadcast.test.bad_channel", {"valid": ", ".join(CHANNELS)})
    channel, _, address = to.strip().partition(":")
    channel = channel.strip().lower()
    address = address.strip()
    if channel not in CHANNELS:
        raise Invalid("to", "broadcast.test.bad_channel", {"valid": ", ".join(CHANNELS)})
    if channel == "telegram" and _TELEGRAM.fullmatch(address):
        return OwnAddress(channel, address, address)
    if channel == "whatsapp":
        digits = e164_digits(address)
        if digits is not None:
            return OwnAddress(channel, digits, digits)
    if channel == "slack":
        found = _SLACK.fullmatch(address)
        if found:
            team, user = found.group(1) or "", found.group(2)
            return OwnAddress(channel, f"{team}:{user}", user)
    raise Invalid("to", _BAD_ADDRESS[channel], {"channel": NAMES[channel]})


def check_locale(consultation: Consultation, locale: str | None) -> str:
    """The locale the test is read in: one of the consultation's, else its default locale."""
    if not locale:
        return consultation.default_locale
    if locale not in consultation.locales:
        valid = ", ".join(consultation.locales)
        raise Invalid("locale", "broadcast.test.unknown_locale", {"locale": locale, "valid": valid})
    return locale


@dataclass(frozen=True)
class TrialOutcome:
    """What became of a test: the channel's handover, the msgid saying it, and where (never
    the address)."""

    handover: Handover
    msgid: str
    channel: str
    locale: str

    @property
    def sent(self) -> bool:
        return self.handover == Handover.SENT

    @property
    def values(self) -> dict[str, str]:
        """The placeholders of `msgid`."""
        return {"channel": NAMES[self.channel], "locale": self.locale}


async def _last_seen(rt: Runtime, to: OwnAddress) -> ChannelIdentity | None:
    """The organiser's own identity on the channel, if they ever wrote to the bot there (on
    WhatsApp, whether they are within the 24-hour window decides text or template)."""
    hashed = identity_hash(rt.flow.secret, to.channel, to.user_id)
    async with rt.sessions() as session:
        found = await session.exec(
            select(ChannelIdentity).where(
                ChannelIdentity.channel == to.channel, ChannelIdentity.identity_hash == hashed
            )
        )
        return found.first()


async def send_test(
    rt: Runtime,
    settings: Settings,
    consultation: Consultation,
    content: BroadcastContent,
    to: OwnAddress,
    locale: str,
    actor: Actor,
) -> TrialOutcome:
    """Send `content` once to `to` as a recipient speaking `locale` gets it, and audit it
    (channel and locale only). `Invalid` on `to` if the channel is not configured."""
    text = text_for(content.texts, locale, consultation.default_locale)
    question = consultation.question
    name = question.get(locale) or question.get(consultation.default_locale, "")
    identity = await _last_seen(rt, to)
    outgoing = BroadcastOutgoing(
        id=0,
        channel=to.channel,
        address=to.address,
        locale=locale,
        text=text,
        button=consultation.slug if content.button else None,
        consultation_slug=consultation.slug,
        last_seen_at=identity.last_seen_at if identity is not None else None,
        template=template_for(content.template, settings_of(consultation), locale),
        template_values={
            "text": " ".join(text.split())[:TEMPLATE_PARAMETER_LENGTH],
            "name": " ".join(name.split())[:TEMPLATE_PARAMETER_LENGTH],
        },
    )
    async with channel_from_settings(rt, settings, to.channel) as channel:
        if channel is None:
            raise Invalid("to", "broadcast.test.not_configured", {"channel": NAMES[to.channel]})
        try:
            handover: Handover = await channel.broadcast(outgoing)
        except Exception as error:  # a bug in a channel: it may have sent; said, not raised
            # its kind only: an SDK's message may quote the address
            log.error("a test message on %s failed: %s", to.channel, type(error).__name__)
            handover = Handover.UNKNOWN
    async with rt.sessions() as session, session.begin():
        await record_action(
            session,
            actor,
            "broadcast-test",
            f"consultation:{consultation.id}",
            consultation.id,
            rt.flow.clock(),
            {"channel": to.channel, "locale": locale, "outcome": handover.value},
        )
    return TrialOutcome(handover, SAID[handover], to.channel, locale)
