"""The moderation page: one proposal at a time, served and locked by the core's queue, with
what helps decide it (its flags, similar proposals, the author's other proposals), and the
decisions, each one call to `core.moderation.decide`.

After a decision the browser is sent to the next proposal (POST, then redirect, then GET: a
reload never decides twice). While the page is open, htmx renews the lock.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query
from fastapi.responses import RedirectResponse, Response

from bots.console.deps import (
    ConsoleDep,
    CsrfChecked,
    ModeratedDep,
    OrganiserDep,
    PageDep,
    SessionDep,
)
from bots.console.pages import Page, PageError, base_path
from bots.console.refusals import reason_label, refusal
from bots.refusals import STATUS
from core.definitions import settings_of
from core.ids import ID_MAX, parse_id
from core.models import Consultation, Proposal
from core.moderation import (
    ALREADY_EXISTS,
    Accept,
    Actor,
    Decision,
    ModerationError,
    Postpone,
    QueueOrder,
    Refuse,
    Source,
    decide,
    ideas_of,
    next_for,
    renew_lock,
)
from core.moderation.overview import author_other_proposals
from core.moderation.similarity import similar_proposals
from core.organisers import OrganiserView

router = APIRouter()

# The queue's order the moderator chose, sent back with each decision to serve the next in it.
OrderField = Annotated[QueueOrder, Form()]

EDIT_MAX_LENGTH = 2000  # the core checks the consultation's own limit; this only bounds a form
SIMILAR_SHOWN = 5


def actor_of(organiser: OrganiserView) -> Actor:
    return Actor(organiser.email, Source.CONSOLE)


def original_of(duplicate_of: str) -> int | None:
    """The proposal a refusal as `already-exists` names ("12" or "#12"; None when blank);
    422 for anything else, a number beyond any id included."""
    typed = duplicate_of.strip().lstrip("#")
    if not typed:
        return None
    original = parse_id(typed)
    if original is None:
        raise PageError(422, "console.refusal.duplicate_not_a_number", value=duplicate_of)
    return original


def reasons_of(page: Page, consultation: Consultation) -> list[tuple[str, str]]:
    """The consultation's refusal reasons: (id, label in the organiser's language)."""
    return [(r, reason_label(page.t, r)) for r in settings_of(consultation).refusal_reasons]


@router.get("/c/{slug}/moderate")
async def moderate(
    consultation: ModeratedDep,
    organiser: OrganiserDep,
    console: ConsoleDep,
    session: SessionDep,
    page: PageDep,
    done: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
    order: Annotated[QueueOrder, Query()] = QueueOrder.OLDEST,
    grouped: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
) -> Response:
    """Serve this moderator the next proposal (the one they hold first) and lock it for them,
    in the `order` they chose (oldest, flagged first, or the same author's next)."""
    assert consultation.id is not None
    now = console.clock()
    async with session.begin():
        served = await next_for(session, consultation.id, organiser.email, now, order=order)
        similar = (
            await similar_proposals(
                session,
                consultation.id,
                served.text,
                served.locale,
                statuses=("accepted", "pending"),
                limit=SIMILAR_SHOWN,
                exclude_id=served.id,
            )
            if served
            else []
        )
        others = await author_other_proposals(session, served.id) if served else []
        decided = await session.get(Proposal, done) if done is not None else None
        ideas = await ideas_of(session, consultation.id)
    if decided is not None and decided.consultation_id != consultation.id:
        decided = None
    lock_seconds = settings_of(consultation).moderation_lock_seconds
    return page.render(
        "moderate.html",
        consultation=consultation,
        served=served,
        flags=[flag.value for flag in served.flags] if served else [],
        order=order.value,
        similar=similar,
        others=others,
        decided=decided,
        ideas=ideas,
        idea_of={p: idea for idea in ideas for p in idea.proposal_ids},
        grouped=next((idea for idea in ideas if idea.id == grouped), None),
        statuses=STATUS,
        reasons=reasons_of(page, consultation),
        already_exists=ALREADY_EXISTS,
        now=now,
        renew_every=max(2, lock_seconds // 3),
    )


class _OnProposal:
    """What each POST on one proposal of the moderation page works with (FastAPI builds it
    from the path and the organiser's session)."""

    def __init__(
        self,
        consultation: ModeratedDep,
        proposal_id: Annotated[int, Path(ge=1, le=ID_MAX)],
        organiser: OrganiserDep,
        console: ConsoleDep,
        session: SessionDep,
        page: PageDep,
    ) -> None:
        self.consultation = consultation
        self.proposal_id = proposal_id
        self.organiser = organiser
        self.console = console
        self.session = session
        self.page = page

    async def check_proposal(self) -> None:
        """404 unless the proposal is one of this consultation's (call in the transaction)."""
        proposal = await self.session.get(Proposal, self.proposal_id)
        if proposal is None or proposal.consultation_id != self.consultation.id:
            raise PageError(404, "console.refusal.unknown_proposal", id=self.proposal_id)


OnProposalDep = Annotated[_OnProposal, Depends()]


async def _decided(on: _OnProposal, decision: Decision, order: QueueOrder) -> Response:
    """Apply the decision in one transaction; a refusal renders why, with its status. Then
    the next proposal, in the moderator's order."""
    base = f"{base_path(on.page.request)}/c/{on.consultation.slug}"
    try:
        async with on.session.begin():
            await on.check_proposal()
            actor = actor_of(on.organiser)
            await decide(on.session, on.proposal_id, decision, actor, on.console.clock())
    except ModerationError as error:
        status, message = refusal(on.page.t, on.proposal_id, error)
        back = f"{base}/moderate?order={order.value}"
        return on.page.render("error.html", status=status, message=message, back=back)
    query = urlencode({"done": on.proposal_id, "order": order.value})
    return RedirectResponse(f"{base}/moderate?{query}", status_code=303)


@router.post("/c/{slug}/proposals/{proposal_id}/accept", dependencies=[CsrfChecked])
async def accept(
    on: OnProposalDep,
    text: Annotated[str, Form(max_length=EDIT_MAX_LENGTH)] = "",
    order: OrderField = QueueOrder.OLDEST,
) -> Response:
    """Accept, with the moderator's light edit when the text was changed."""
    return await _decided(on, Accept(text=text if text.strip() else None), order)


@router.post("/c/{slug}/proposals/{proposal_id}/refuse", dependencies=[CsrfChecked])
async def refuse(
    on: OnProposalDep,
    reason: Annotated[str, Form(max_length=64)],
    duplicate_of: Annotated[str, Form(max_length=20)] = "",
    order: OrderField = QueueOrder.OLDEST,
) -> Response:
    """Refuse with one of the consultation's reasons (`already-exists` names the original)."""
    return await _decided(on, Refuse(reason, original_of(duplicate_of)), order)


@router.post("/c/{slug}/proposals/{proposal_id}/postpone", dependencies=[CsrfChecked])
async def postpone(on: OnProposalDep, order: OrderField = QueueOrder.OLDEST) -> Response:
    return await _decided(on, Postpone(), order)


@router.post("/c/{slug}/proposals/{proposal_id}/renew", dependencies=[CsrfChecked])
async def renew(on: OnProposalDep) -> Response:
    """Keep the proposal for this moderator while their page is open (htmx polls this); 409
    with what happened once it is someone else's or decided."""
    now = on.console.clock()
    try:
        async with on.session.begin():
            await on.check_proposal()
            until = await renew_lock(on.session, on.proposal_id, on.organiser.email, now)
    except ModerationError as error:
        status, message = refusal(on.page.t, on.proposal_id, error)
        return on.page.render(
            "lock.html",
            status=status,
            consultation=on.consultation,
            lost=message,
            until=None,
            id=on.proposal_id,
        )
    lock_seconds = settings_of(on.consultation).moderation_lock_seconds
    return on.page.render(
        "lock.html",
        consultation=on.consultation,
        lost=None,
        until=until,
        id=on.proposal_id,
        renew_every=max(2, lock_seconds // 3),
    )
