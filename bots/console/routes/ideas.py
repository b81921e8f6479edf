"""Grouping proposals that say the same into an idea, from the moderation page: a new idea by
name, or an existing one of the consultation (`core.moderation.ideas`)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse, Response

from bots.console.deps import (
    ConsoleDep,
    CsrfChecked,
    FormId,
    ModeratedDep,
    OrganiserDep,
    PageDep,
    SessionDep,
)
from bots.console.pages import PageError, base_path
from bots.console.refusals import refusal
from bots.console.routes.moderation import OrderField, actor_of
from core.ids import parse_id
from core.moderation import ModerationError, QueueOrder, add_to_idea, create_idea, ideas_of
from core.moderation.ideas import NAME_LENGTH

router = APIRouter()

GROUPED_MAX = 50


@router.post("/c/{slug}/ideas", dependencies=[CsrfChecked])
async def group_into_idea(
    consultation: ModeratedDep,
    organiser: OrganiserDep,
    console: ConsoleDep,
    session: SessionDep,
    page: PageDep,
    ids: Annotated[list[FormId], Form()] = [],  # noqa: B006 - FastAPI copies a default per request
    idea: Annotated[str, Form(max_length=20)] = "",
    name: Annotated[str, Form(max_length=NAME_LENGTH + 50)] = "",
    order: OrderField = QueueOrder.OLDEST,
) -> Response:
    """Put the ticked proposals in the chosen idea, or in a new one named `name`; back to the
    moderation page (the proposal being moderated stays held)."""
    assert consultation.id is not None
    back = f"{base_path(page.request)}/c/{consultation.slug}/moderate"
    if not ids or len(ids) > GROUPED_MAX:
        raise PageError(422, "console.ideas.select", maximum=GROUPED_MAX)
    actor, now = actor_of(organiser), console.clock()
    try:
        async with session.begin():
            if idea.strip():
                known = {i.id for i in await ideas_of(session, consultation.id)}
                chosen = parse_id(idea.strip())
                if chosen is None or chosen not in known:
                    raise PageError(404, "console.ideas.unknown", idea=idea[:20])
                grouped = await add_to_idea(session, chosen, ids, actor, now)
            else:
                grouped = await create_idea(session, consultation.id, name, actor, now, ids)
    except ModerationError as error:
        status, message = refusal(page.t, ids[0], error)
        return page.render("error.html", status=status, message=message, back=back)
    query = urlencode({"order": order.value, "grouped": grouped.id})
    return RedirectResponse(f"{back}?{query}", status_code=303)
