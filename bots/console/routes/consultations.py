"""The consultations an organiser may see, and one consultation's overview."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from sqlmodel import col, select

from bots.console.deps import ConsoleDep, ConsultationDep, OrganiserDep, PageDep, SessionDep
from core.models import Consultation
from core.moderation.overview import consultation_overview, pending_counts
from core.notices import notices_needing_attention
from core.organisers import Permission

router = APIRouter()

STATUSES = ("pending", "accepted", "refused", "postponed", "archived", "withdrawn")


def question_of(consultation: Consultation, locale: str) -> str:
    """The consultation's question in the organiser's language, else in its own."""
    question = consultation.question
    return question.get(locale) or question.get(consultation.default_locale) or consultation.slug


@router.get("/")
async def consultation_list(
    organiser: OrganiserDep, session: SessionDep, page: PageDep
) -> Response:
    readable = organiser.readable()
    query = select(Consultation).order_by(col(Consultation.slug))
    if readable is not None:
        query = query.where(col(Consultation.id).in_(readable))
    async with session.begin():
        found = list(await session.exec(query))
        pending = await pending_counts(session, readable)
    listed = [
        {
            "slug": c.slug,
            "question": question_of(c, page.t.locale),
            "status": c.status,
            "pending": pending.get(c.id or 0, 0),
        }
        for c in found
    ]
    return page.render("consultations.html", consultations=listed)


@router.get("/c/{slug}")
async def overview(
    consultation: ConsultationDep,
    organiser: OrganiserDep,
    console: ConsoleDep,
    session: SessionDep,
    page: PageDep,
) -> Response:
    assert consultation.id is not None
    async with session.begin():
        figures = await consultation_overview(session, consultation.id, console.clock())
        notices = await notices_needing_attention(session, consultation.id)
    return page.render(
        "overview.html",
        consultation=consultation,
        question=question_of(consultation, page.t.locale),
        figures=figures,
        notices=notices,
        statuses=STATUSES,
        can_moderate=organiser.can(Permission.MODERATE, consultation.id),
    )
