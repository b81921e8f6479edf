"""A proposal's history of decisions, and the organisers' append-only audit log.

Both are only ever inserted into: nothing here updates or deletes a row. Neither names a
participant: an author is reached through a proposal id, never written down.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import AuditEntry, ProposalEvent
from core.moderation.actors import Actor

AUDIT_PAGE = 50
AUDIT_PAGE_MAX = 500


async def record_action(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target: str,
    consultation_id: int | None,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an organiser's action to the audit log, in the caller's transaction.

    `target` names what was acted on ("proposal:42"); `detail` holds what else the action took
    (a reason, an id): never a participant's identifier or words.
    """
    entry = AuditEntry(
        consultation_id=consultation_id,
        actor=actor.organiser,
        action=action,
        target=target,
        source=actor.source.value,
        detail=detail or {},
        at=now,
    )
    session.add(entry)
    return entry


async def proposal_history(session: AsyncSession, proposal_id: int) -> list[ProposalEvent]:
    """The decisions taken on a proposal, oldest first (an edit keeps the text it replaced)."""
    found = await session.exec(
        select(ProposalEvent)
        .where(ProposalEvent.proposal_id == proposal_id)
        .order_by(col(ProposalEvent.id))
    )
    return list(found)


async def audit_log(
    session: AsyncSession,
    consultation_id: int,
    *,
    before: int | None = None,
    limit: int = AUDIT_PAGE,
) -> list[AuditEntry]:
    """A page of a consultation's audit log, newest first.

    The next page is the entries `before` the last id of this one (keyset pagination: a page
    stays right while entries are appended). `limit` is capped at AUDIT_PAGE_MAX.
    """
    query = select(AuditEntry).where(AuditEntry.consultation_id == consultation_id)
    if before is not None:
        query = query.where(col(AuditEntry.id) < before)
    limit = max(1, min(limit, AUDIT_PAGE_MAX))
    found = await session.exec(query.order_by(col(AuditEntry.id).desc()).limit(limit))
    return list(found)


def audit_fields(entry: AuditEntry) -> dict[str, Any]:
    """What an organiser reads of an audit entry (the API's, the CLI's export): who, what, on
    what, from where, when."""
    return {
        "id": entry.id or 0,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "source": entry.source,
        "detail": entry.detail,
    }
