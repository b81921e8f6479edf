"""Why the core refused a moderation request, as the console says it: an HTTP status and a
sentence in the organiser's language. Every refusal changed nothing."""

from __future__ import annotations

from datetime import datetime

from babel.dates import format_time

from bots.refusals import HTTP_STATUS, refusal_values
from core.i18n import Translator
from core.moderation import (
    IdeaNameRefused,
    ModerationError,
    UnknownIdea,
)

# The default refusal reasons (core.definitions.REFUSAL_REASONS) as a moderator reads them; a
# consultation's own reasons are shown by their id.
REASONS = {
    "incomprehensible": "console.reason.incomprehensible",
    "off-topic": "console.reason.off-topic",
    "partisan": "console.reason.partisan",
    "illegal": "console.reason.illegal",
    "advertising": "console.reason.advertising",
    "several-ideas": "console.reason.several-ideas",
    "wrong-language": "console.reason.wrong-language",
    "rudeness": "console.reason.rudeness",
    "out-of-scope": "console.reason.out-of-scope",
    "already-exists": "console.reason.already-exists",
    "other": "console.reason.other",
}


def reason_label(t: Translator, reason: str) -> str:
    return t(REASONS[reason]) if reason in REASONS else reason


def _time(t: Translator, moment: datetime) -> str:
    return format_time(moment, "short", tzinfo=moment.tzinfo, locale=t.locale)


def refusal(t: Translator, proposal_id: int, error: ModerationError) -> tuple[int, str]:
    """The HTTP status and the sentence for a refused request on `proposal_id`."""
    if isinstance(error, UnknownIdea):
        return 404, t("console.ideas.unknown", idea=error.idea_id)
    if isinstance(error, IdeaNameRefused):
        if error.taken:
            return 422, t("console.ideas.name_taken", name=error.name)
        return 422, t("console.ideas.name_refused")
    values = refusal_values(t, error, proposal_id, when=_time)
    return HTTP_STATUS[error.kind], t(f"console.refusal.{error.kind}", **values)
