"""The moderation API: the queue's next proposal, the decisions, lock renewal, the filtered
list. Each route is one `core.moderation` call in one transaction, as the organiser the
bearer token names (`Source.API`); its refusals are 4xx saying what to fix."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bots.api.deps import (
    ApiProblem,
    NowDep,
    OrganiserDep,
    RuntimeDep,
    TranslatorDep,
    consultation_for,
    require,
)
from bots.api.schemas import (
    AcceptBody,
    DecidedPublic,
    LockPublic,
    NextPublic,
    ProposalPublic,
    ProposalsPage,
    RefuseBody,
    SimilarPublic,
    refusals,
)
from bots.bootstrap import Runtime
from bots.refusals import HTTP_STATUS, refusal_values
from core.i18n import Translator
from core.ids import ID_MAX  # beyond any id: a bigger one is a 422, never sent to SQL
from core.models import Proposal, ProposalStatus
from core.moderation import (
    Accept,
    Actor,
    AlreadyDecided,
    Archive,
    Decision,
    Locked,
    ModerationError,
    NotAccepted,
    Postpone,
    QueueOrder,
    Refuse,
    Source,
    UnknownReason,
    Withdraw,
    decide,
    next_for,
    renew_lock,
)
from core.moderation.flags import Flag, flags_of, has_flag
from core.moderation.similarity import similar_proposals
from core.organisers import OrganiserView, Permission

PAGE = 50
PAGE_MAX = 500
SIMILAR_SHOWN = 3

_REFUSALS: dict[int, str] = {
    401: "No token, or an unknown or revoked one",
    403: "The token's organiser has no such role on this consultation",
    404: "Unknown consultation or proposal",
    409: "Held by another moderator, or decided already",
    422: "A body or a value to fix",
}
ProposalPath = Path(ge=1, le=ID_MAX)


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return refusals(_REFUSALS, *statuses)


def _public(proposal: Proposal) -> ProposalPublic:
    assert proposal.id is not None
    return ProposalPublic(
        id=proposal.id,
        text=proposal.text,
        locale=proposal.locale,
        status=proposal.status,
        created_at=proposal.created_at,
        flags=[str(flag) for flag in flags_of(proposal)],
        locked_by=proposal.locked_by,
        lock_expires_at=proposal.locked_until,
    )


def _refused(t: Translator, error: ModerationError) -> ApiProblem:
    """The HTTP refusal of a moderation error (nothing was changed), with fields for scripts."""
    extra: dict[str, Any] = {}
    if isinstance(error, Locked):
        extra = {"locked_by": error.holder, "lock_expires_at": error.expires_at.isoformat()}
    elif isinstance(error, AlreadyDecided | NotAccepted):
        extra = {"status": error.status}
    elif isinstance(error, UnknownReason):
        extra = {"allowed": list(error.allowed)}
    values = refusal_values(t, error)
    return ApiProblem(HTTP_STATUS[error.kind], f"api.{error.kind}", extra, **values)


async def _check_moderates(
    session: AsyncSession, organiser: OrganiserView, proposal_id: int
) -> None:
    """404 for an unknown proposal, 403 unless the organiser moderates its consultation."""
    proposal = await session.get(Proposal, proposal_id)
    if proposal is None:
        raise ApiProblem(404, "api.unknown_proposal", id=proposal_id)
    require(organiser, Permission.MODERATE, proposal.consultation_id)


async def _decide(
    rt: Runtime,
    t: Translator,
    now: datetime,
    organiser: OrganiserView,
    proposal_id: int,
    decision: Decision,
) -> DecidedPublic:
    actor = Actor(organiser.email, Source.API)
    async with rt.sessions() as session, session.begin():
        await _check_moderates(session, organiser, proposal_id)
        try:
            decided = await decide(session, proposal_id, decision, actor, now)
        except ModerationError as error:
            raise _refused(t, error) from None
    return DecidedPublic(
        proposal_id=decided.proposal_id, status=decided.status, event_id=decided.event_id
    )


def moderation_router() -> APIRouter:
    """`/api/consultations/{slug}/moderation/next`, `.../proposals`, `/api/proposals/{id}/...`."""
    router = APIRouter(prefix="/api", tags=["moderation"])

    @router.get(
        "/consultations/{slug}/moderation/next",
        response_model=NextPublic,
        responses={204: {"description": "Nothing pending"}, **_responses(401, 403, 404, 422)},
    )
    async def next_proposal(
        slug: str,
        rt: RuntimeDep,
        now: NowDep,
        organiser: OrganiserDep,
        order: QueueOrder = QueueOrder.OLDEST,
    ) -> Any:
        """Serve the caller the next pending proposal and hold it for them a short while
        (renew with POST /api/proposals/{id}/renew); 204 when nothing is pending."""
        consultation = await consultation_for(rt, organiser, slug, Permission.MODERATE)
        assert consultation.id is not None
        async with rt.sessions() as session, session.begin():
            served = await next_for(session, consultation.id, organiser.email, now, order=order)
            if served is None:
                return Response(status_code=204)
            similar = await similar_proposals(
                session,
                consultation.id,
                served.text,
                served.locale,
                statuses=(ProposalStatus.ACCEPTED.value, ProposalStatus.PENDING.value),
                limit=SIMILAR_SHOWN,
                exclude_id=served.id,
            )
        assert served.locked_until is not None
        flags = [str(flag) for flag in served.flags]
        return NextPublic(
            proposal=ProposalPublic(
                id=served.id,
                text=served.text,
                locale=served.locale,
                status=ProposalStatus.PENDING.value,
                created_at=served.created_at,
                flags=flags,
                locked_by=served.locked_by,
                lock_expires_at=served.locked_until,
            ),
            flags=flags,
            similar=[
                SimilarPublic(
                    proposal_id=s.proposal_id, text=s.text, status=s.status, score=s.score
                )
                for s in similar
            ],
            lock_expires_at=served.locked_until,
        )

    @router.get(
        "/consultations/{slug}/proposals",
        response_model=ProposalsPage,
        responses=_responses(401, 403, 404, 422),
    )
    async def list_proposals(
        slug: str,
        rt: RuntimeDep,
        organiser: OrganiserDep,
        status: ProposalStatus | None = None,
        flag: Flag | None = None,
        q: Annotated[str | None, Query(max_length=200, description="words in the text")] = None,
        limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = PAGE,
        offset: Annotated[int, Query(ge=0, le=ID_MAX)] = 0,
    ) -> ProposalsPage:
        """A page of the consultation's proposals, oldest first, filtered by status, flag and
        a text search (case-insensitive)."""
        consultation = await consultation_for(rt, organiser, slug, Permission.READ)
        condition: list[Any] = [Proposal.consultation_id == consultation.id]
        if status is not None:
            condition.append(Proposal.status == status.value)
        if flag is not None:
            condition.append(has_flag(flag))
        if q:
            escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            condition.append(func.lower(col(Proposal.text)).like(f"%{escaped}%", escape="\\"))
        async with rt.sessions() as session:
            total = (await session.exec(select(func.count()).where(*condition))).one()
            found = await session.exec(
                select(Proposal)
                .where(*condition)
                .order_by(col(Proposal.created_at), col(Proposal.id))
                .limit(limit)
                .offset(offset)
            )
            proposals = [_public(p) for p in found]
        return ProposalsPage(total=total, limit=limit, offset=offset, proposals=proposals)

    decided: dict[str, Any] = {
        "response_model": DecidedPublic,
        "responses": _responses(401, 403, 404, 409, 422),
    }

    @router.post("/proposals/{proposal_id}/accept", **decided)
    async def accept(
        proposal_id: Annotated[int, ProposalPath],
        rt: RuntimeDep,
        t: TranslatorDep,
        now: NowDep,
        organiser: OrganiserDep,
        body: Annotated[AcceptBody | None, Body()] = None,
    ) -> DecidedPublic:
        """Accept: participants are shown it (with `text`, lightly edited); the author is
        told unless `notify` is false."""
        body = body or AcceptBody()
        decision = Accept(text=body.text, notify=body.notify)
        return await _decide(rt, t, now, organiser, proposal_id, decision)

    @router.post("/proposals/{proposal_id}/refuse", **decided)
    async def refuse(
        proposal_id: Annotated[int, ProposalPath],
        body: RefuseBody,
        rt: RuntimeDep,
        t: TranslatorDep,
        now: NowDep,
        organiser: OrganiserDep,
    ) -> DecidedPublic:
        """Refuse with one of the consultation's reasons (already-exists names the accepted
        proposal it repeats in `duplicate_of`); the author is told why unless `notify` is false."""
        decision = Refuse(body.reason, body.duplicate_of, notify=body.notify)
        return await _decide(rt, t, now, organiser, proposal_id, decision)

    simple: tuple[tuple[str, Decision, str], ...] = (
        ("postpone", Postpone(), "Set a pending proposal aside, to decide later."),
        ("archive", Archive(), "Keep a proposal out, without a reason or a notice."),
        ("withdraw", Withdraw(), "Take an accepted proposal back (its votes are kept)."),
    )
    for name, decision, summary in simple:
        _add_simple(router, name, decision, summary, decided)

    @router.post(
        "/proposals/{proposal_id}/renew",
        response_model=LockPublic,
        responses=_responses(401, 403, 404, 409, 422),
    )
    async def renew(
        proposal_id: Annotated[int, ProposalPath],
        rt: RuntimeDep,
        t: TranslatorDep,
        now: NowDep,
        organiser: OrganiserDep,
    ) -> LockPublic:
        """Keep holding a proposal the queue served you another lock time."""
        async with rt.sessions() as session, session.begin():
            await _check_moderates(session, organiser, proposal_id)
            try:
                until = await renew_lock(session, proposal_id, organiser.email, now)
            except ModerationError as error:
                raise _refused(t, error) from None
        return LockPublic(proposal_id=proposal_id, lock_expires_at=until)

    return router


def _add_simple(
    router: APIRouter, name: str, decision: Decision, summary: str, options: dict[str, Any]
) -> None:
    async def route(
        proposal_id: Annotated[int, ProposalPath],
        rt: RuntimeDep,
        t: TranslatorDep,
        now: NowDep,
        organiser: OrganiserDep,
    ) -> DecidedPublic:
        return await _decide(rt, t, now, organiser, proposal_id, decision)

    router.add_api_route(
        f"/proposals/{{proposal_id}}/{name}",
        route,
        methods=["POST"],
        name=name,
        summary=summary,
        **options,
    )
