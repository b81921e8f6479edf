"""Bulk mode: a filtered list of a consultation's proposals (status, flag, words), and one
decision for the ticked ones, applied by `core.moderation.decide_many` in one transaction."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import Response

from bots.console.deps import (
    ConsoleDep,
    ConsultationDep,
    CsrfChecked,
    FormId,
    ModeratedDep,
    OrganiserDep,
    PageDep,
    SessionDep,
)
from bots.console.pages import Page, PageError
from bots.console.refusals import refusal
from bots.console.routes.moderation import actor_of, original_of, reasons_of
from bots.refusals import STATUS, status_label
from core.models import Consultation, ProposalStatus
from core.moderation import (
    Accept,
    Archive,
    Decided,
    Decision,
    ModerationError,
    Postpone,
    Refuse,
    UnknownProposal,
    Withdraw,
    decide_many,
)
from core.moderation.flags import Flag
from core.moderation.overview import LIST_PAGE, proposals_matching
from core.organisers import Permission

router = APIRouter()

ACTIONS = ("accept", "refuse", "postpone", "archive", "withdraw")
SELECTION_MAX = 500


def _filters(status: str, flag: str, q: str) -> dict[str, Any]:
    return {
        "status": status if status in STATUS else "",
        "flag": flag if flag in {f.value for f in Flag} else "",
        "q": q.strip(),
    }


async def _listing(
    page: Page,
    session: SessionDep,
    consultation: Consultation,
    filters: dict[str, Any],
    number: int,
    organiser: OrganiserDep,
    **values: Any,
) -> dict[str, Any]:
    assert consultation.id is not None
    number = max(1, number)
    async with session.begin():
        listed, total = await proposals_matching(
            session,
            consultation.id,
            status=filters["status"] or None,
            search=filters["q"] or None,
            flag=filters["flag"] or None,
            limit=LIST_PAGE,
            offset=(number - 1) * LIST_PAGE,
        )
    return {
        "consultation": consultation,
        "filters": filters,
        "listed": listed,
        "total": total,
        "number": number,
        "pages": max(1, -(-total // LIST_PAGE)),
        "statuses": STATUS,
        "flags": [f.value for f in Flag],
        "actions": ACTIONS,
        "reasons": reasons_of(page, consultation),
        "can_moderate": organiser.can(Permission.MODERATE, consultation.id),
        "outcome": [],
        **values,
    }


@router.get("/c/{slug}/bulk")
async def bulk_list(
    consultation: ConsultationDep,
    organiser: OrganiserDep,
    session: SessionDep,
    page: PageDep,
    status: Annotated[str, Query(max_length=16)] = ProposalStatus.PENDING.value,
    flag: Annotated[str, Query(max_length=32)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    filters = _filters(status, flag, q)
    context = await _listing(page, session, consultation, filters, number, organiser)
    return page.render("bulk.html", **context)


def _decision(action: str, reason: str, duplicate_of: str, text: str) -> Decision:
    if action == "accept":
        return Accept()
    if action == "refuse":
        return Refuse(reason, original_of(duplicate_of))
    others: dict[str, Decision] = {
        "postpone": Postpone(),
        "archive": Archive(),
        "withdraw": Withdraw(),
    }
    if action not in others:
        raise PageError(422, "console.bulk.unknown_action", action=action[:16])
    return others[action]


@router.post("/c/{slug}/bulk", dependencies=[CsrfChecked])
async def bulk_decide(
    consultation: ModeratedDep,
    organiser: OrganiserDep,
    console: ConsoleDep,
    session: SessionDep,
    page: PageDep,
    action: Annotated[str, Form(max_length=16)],
    ids: Annotated[list[FormId], Form()] = [],  # noqa: B006 - FastAPI copies a default per request
    reason: Annotated[str, Form(max_length=64)] = "",
    duplicate_of: Annotated[str, Form(max_length=20)] = "",
    status: Annotated[str, Form(max_length=16)] = ProposalStatus.PENDING.value,
    flag: Annotated[str, Form(max_length=32)] = "",
    q: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """One decision for every ticked proposal; per proposal, applied or why not."""
    assert consultation.id is not None
    if not ids:
        raise PageError(422, "console.bulk.nothing_selected")
    if len(ids) > SELECTION_MAX:
        raise PageError(422, "console.bulk.too_many", maximum=SELECTION_MAX)
    decision = _decision(action, reason, duplicate_of, "")
    outcome: dict[int, Decided | ModerationError] = {}
    async with session.begin():
        ours, _ = await proposals_matching(
            session, consultation.id, status=None, ids=tuple(ids), limit=SELECTION_MAX
        )
        inside = [p.id for p in ours]
        outcome = await decide_many(session, inside, decision, actor_of(organiser), console.clock())
    for outside in set(ids) - set(inside):
        outcome[outside] = UnknownProposal(outside)
    lines: list[tuple[bool, str]] = []
    failures: list[int] = []
    for proposal_id, result in sorted(outcome.items()):
        if isinstance(result, Decided):
            label = status_label(page.t, result.status)
            lines.append((True, page.t("console.bulk.decided", id=proposal_id, status=label)))
        else:
            code, message = refusal(page.t, proposal_id, result)
            failures.append(code)
            lines.append((False, message))
    filters = _filters(status, flag, q)
    context = await _listing(page, session, consultation, filters, 1, organiser, outcome=lines)
    # Nothing applied: the status of the first refusal (409, 422...), so a script can tell.
    code = failures[0] if failures and len(failures) == len(outcome) else 200
    return page.render("bulk.html", status=code, **context)
