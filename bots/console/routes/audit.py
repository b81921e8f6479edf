"""A consultation's audit log, newest first, a page at a time (keyset: `?before=<id>`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from bots.console.deps import ConsultationDep, PageDep, SessionDep
from core.ids import ID_MAX
from core.moderation import audit_log

router = APIRouter()

AUDIT_SHOWN = 50


@router.get("/c/{slug}/audit")
async def audit(
    consultation: ConsultationDep,
    session: SessionDep,
    page: PageDep,
    before: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
) -> Response:
    assert consultation.id is not None
    async with session.begin():
        # One more than shown: whether an older page exists, without counting the log.
        entries = await audit_log(session, consultation.id, before=before, limit=AUDIT_SHOWN + 1)
    older = entries[AUDIT_SHOWN - 1].id if len(entries) > AUDIT_SHOWN else None
    return page.render(
        "audit.html",
        consultation=consultation,
        entries=entries[:AUDIT_SHOWN],
        before=before,
        older=older,
    )
