"""The audit log over the API: a consultation's (anyone who may read it), or the whole log,
organisers' own actions included (administrators of every consultation)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlmodel import col, select

from bots.api.deps import ApiProblem, OrganiserDep, RuntimeDep, consultation_for
from bots.api.schemas import AuditPage, AuditPublic, Problem
from core.ids import ID_MAX
from core.models import AuditEntry, Consultation
from core.moderation import audit_log
from core.moderation.history import AUDIT_PAGE, AUDIT_PAGE_MAX, audit_fields
from core.organisers import PERMISSIONS, Permission

_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No token, or an unknown or revoked one"},
    403: {"model": Problem, "description": "No role that allows reading this log"},
    404: {"model": Problem, "description": "Unknown consultation"},
}


Before = Annotated[int | None, Query(ge=1, le=ID_MAX, description="an entry id")]
Limit = Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX)]


def _page(entries: list[AuditEntry], slugs: dict[int, str], limit: int) -> AuditPage:
    public = [
        AuditPublic(
            consultation=slugs.get(e.consultation_id) if e.consultation_id else None,
            **audit_fields(e),
        )
        for e in entries
    ]
    more = len(entries) == limit and entries[-1].id is not None
    return AuditPage(entries=public, next_before=entries[-1].id if more else None)


def audit_router() -> APIRouter:
    """`GET /api/consultations/{slug}/audit` and `GET /api/audit`."""
    router = APIRouter(prefix="/api", tags=["audit"])

    @router.get("/consultations/{slug}/audit", response_model=AuditPage, responses=_RESPONSES)
    async def consultation_audit(
        slug: str,
        rt: RuntimeDep,
        organiser: OrganiserDep,
        before: Before = None,
        limit: Limit = AUDIT_PAGE,
    ) -> AuditPage:
        """A page of the consultation's audit log, newest first (who did what, from where)."""
        consultation = await consultation_for(rt, organiser, slug, Permission.READ)
        assert consultation.id is not None
        async with rt.sessions() as session:
            entries = await audit_log(session, consultation.id, before=before, limit=limit)
        return _page(entries, {consultation.id: consultation.slug}, limit)

    @router.get("/audit", response_model=AuditPage, responses=_RESPONSES)
    async def whole_audit(
        rt: RuntimeDep,
        organiser: OrganiserDep,
        before: Before = None,
        limit: Limit = AUDIT_PAGE,
    ) -> AuditPage:
        """A page of the whole audit log, newest first: every consultation's, and the actions
        on organisers. For administrators of every consultation."""
        if not any(
            g.consultation_id is None and Permission.ADMINISTER in PERMISSIONS[g.role]
            for g in organiser.grants
        ):
            raise ApiProblem(403, "api.forbidden.whole_audit")
        query = select(AuditEntry)
        if before is not None:
            query = query.where(col(AuditEntry.id) < before)
        async with rt.sessions() as session:
            found = await session.exec(query.order_by(col(AuditEntry.id).desc()).limit(limit))
            entries = list(found)
            slugs = {c.id: c.slug for c in (await session.exec(select(Consultation))).all()}
        return _page(entries, {k: v for k, v in slugs.items() if k is not None}, limit)

    return router
