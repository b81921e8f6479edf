"""Why the core refused a moderation request, as the console says it: an HTTP status and a
sentence in the organiser's language. Every refusal changed nothing."""

from __future__ import annotations

from babel.dates import format_time

from core.i18n import Translator
from core.moderation import (
    AlreadyDecided,
    DuplicateNotExpected,
    DuplicateRequired,
    EditRefused,
    IdeaNameRefused,
    Locked,
    ModerationError,
    NotAccepted,
    UnknownDuplicate,
    UnknownIdea,
    UnknownProposal,
    UnknownReason,
)

# A status as a moderator reads it (literal msgids, so the i18n test sees them).
STATUS = {
    "pending": "moderation.status.pending",
    "accepted": "moderation.status.accepted",
    "refused": "moderation.status.refused",
    "postponed": "moderation.status.postponed",
    "archived": "moderation.status.archived",
    "withdrawn": "moderation.status.withdrawn",
}

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


def status_label(t: Translator, status: str) -> str:
    return t(STATUS[status]) if status in STATUS else status


def reason_label(t: Translator, reason: str) -> str:
    return t(REASONS[reason]) if reason in REASONS else reason


def refusal(t: Translator, proposal_id: int, error: ModerationError) -> tuple[int, str]:
    """The HTTP status and the sentence for a refused request on `proposal_id`."""
    if isinstance(error, UnknownProposal):
        return 404, t("console.refusal.unknown_proposal", id=error.proposal_id)
    if isinstance(error, Locked):
        until = format_time(
            error.expires_at, "short", tzinfo=error.expires_at.tzinfo, locale=t.locale
        )
        return 409, t("console.refusal.locked", id=proposal_id, holder=error.holder, until=until)
    if isinstance(error, AlreadyDecided):
        status = status_label(t, error.status)
        return 409, t("console.refusal.already_decided", id=proposal_id, status=status)
    if isinstance(error, NotAccepted):
        status = status_label(t, error.status)
        return 409, t("console.refusal.not_accepted", id=proposal_id, status=status)
    if isinstance(error, UnknownReason):
        return 422, t("console.refusal.unknown_reason", reason=error.reason)
    if isinstance(error, DuplicateRequired):
        return 422, t("console.refusal.duplicate_required")
    if isinstance(error, DuplicateNotExpected):
        return 422, t("console.refusal.duplicate_not_expected")
    if isinstance(error, UnknownDuplicate):
        return 422, t("console.refusal.unknown_duplicate", id=error.duplicate_of)
    if isinstance(error, EditRefused):
        problem = t(error.problem.msgid, **error.problem.values)
        return 422, t("console.refusal.edit_refused", problem=problem)
    if isinstance(error, UnknownIdea):
        return 404, t("console.ideas.unknown", idea=error.idea_id)
    if isinstance(error, IdeaNameRefused):
        if error.taken:
            return 422, t("console.ideas.name_taken", name=error.name)
        return 422, t("console.ideas.name_refused")
    raise AssertionError(f"unexplained refusal: {error!r}")
