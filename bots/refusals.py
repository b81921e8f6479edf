"""A refused moderation request as every organiser surface says it (CLI, API, console): the
values its sentence names, translated, and the HTTP status the API and the console answer.
Each surface keeps its own sentences (`cli.moderation_<kind>`, `api.<kind>`,
`console.refusal.<kind>`); what they name and how is decided here once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from babel.dates import format_datetime

from core.i18n import Translator
from core.moderation import ModerationError

# By `ModerationError.kind`: an unknown proposal is not found, a held or decided one conflicts,
# anything else in the request is a value to fix.
HTTP_STATUS = {
    "unknown_proposal": 404,
    "locked": 409,
    "already_decided": 409,
    "not_accepted": 409,
    "unknown_reason": 422,
    "duplicate_required": 422,
    "duplicate_not_expected": 422,
    "unknown_duplicate": 422,
    "edit_refused": 422,
}

# A proposal's status as an organiser reads it (literal msgids, so the i18n test sees them).
STATUS = {
    "pending": "moderation.status.pending",
    "accepted": "moderation.status.accepted",
    "refused": "moderation.status.refused",
    "postponed": "moderation.status.postponed",
    "archived": "moderation.status.archived",
    "withdrawn": "moderation.status.withdrawn",
}


def status_label(t: Translator, status: str) -> str:
    """`status` as an organiser reads it; a status we have no words for, as it is."""
    return t(STATUS[status]) if status in STATUS else status


def short_datetime(t: Translator, moment: datetime) -> str:
    """A date and time in the organiser's language, in `moment`'s own time zone."""
    return format_datetime(moment, "short", tzinfo=moment.tzinfo, locale=t.locale)


def refusal_values(
    t: Translator,
    error: ModerationError,
    proposal_id: int | None = None,
    when: Callable[[Translator, datetime], str] = short_datetime,
) -> dict[str, Any]:
    """What the sentence for `error` names, translated: `id` (the proposal asked about, or the
    one the error names), `holder` and `until` (formatted by `when`), `status`, `reason`,
    `allowed`, `problem`. A sentence takes the values it has placeholders for."""
    values: dict[str, Any] = {} if proposal_id is None else {"id": proposal_id}
    for name, value in error.values().items():
        if name == "expires_at":
            values["until"] = when(t, value)
        elif name == "status":
            values["status"] = status_label(t, value)
        elif name == "problem":
            values["problem"] = t(value.msgid, **value.values)
        else:
            values[name] = value
    return values
