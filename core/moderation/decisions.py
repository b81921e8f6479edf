"""Decisions on proposals: accept (with a light edit), refuse with a reason, postpone, archive,
withdraw; one at a time or in bulk. Every entrypoint (CLI, API, console, chat) calls `decide`.

Each decision runs in the caller's transaction and locks the proposal's row first (PostgreSQL;
SQLite's transactions are serial already), so of two moderators deciding the same proposal at
once the second reads it decided and gets AlreadyDecided. Every check is made before anything
is written: a refused decision changes nothing. A decision writes the proposal's status (which
the sequencing indexes hold: nothing else to update; votes and counters are left alone), one
history row and one audit entry, and releases the queue's lock. Accepting and refusing also
write the author's notice (`core.notices`), unless told not to (`notify=False`): in the same
transaction, so the author is told of a decision that stands, and of no other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import ConsultationSettings, settings_of
from core.i18n import Translator
from core.models import Consultation, NoticeKind, Proposal, ProposalEvent, ProposalStatus
from core.moderation.actors import Actor
from core.moderation.errors import (
    AlreadyDecided,
    DuplicateNotExpected,
    DuplicateRequired,
    EditRefused,
    Locked,
    ModerationError,
    NotAccepted,
    UnknownDuplicate,
    UnknownReason,
)
from core.moderation.history import record_action
from core.moderation.queue import held_by_another, locked_proposal
from core.notices import queue_notice
from core.proposals import check_proposal, compose_proposal

ALREADY_EXISTS = "already-exists"
# Still to be decided: a postponed proposal is decided later, and only once.
UNDECIDED = (ProposalStatus.PENDING, ProposalStatus.POSTPONED)


@dataclass(frozen=True)
class Accept:
    """Show the proposal to participants; `text` replaces it (a light edit), checked as a
    participant's would be. The author is told unless `notify` is False."""

    action: ClassVar[str] = "accept"
    text: str | None = None
    notify: bool = True


@dataclass(frozen=True)
class Refuse:
    """Refuse with one of the consultation's reasons; `already-exists` names the accepted
    proposal it repeats (`duplicate_of`). The author is told why unless `notify` is False."""

    action: ClassVar[str] = "refuse"
    reason: str
    duplicate_of: int | None = None
    notify: bool = True


@dataclass(frozen=True)
class Postpone:
    """Set a pending proposal aside, to decide later (by id: the queue serves pending ones)."""

    action: ClassVar[str] = "postpone"


@dataclass(frozen=True)
class Archive:
    """Keep a proposal out of the consultation without refusing it (no reason, no notice)."""

    action: ClassVar[str] = "archive"


@dataclass(frozen=True)
class Withdraw:
    """Take an accepted proposal back: out of every sequence, its votes kept for the record."""

    action: ClassVar[str] = "withdraw"


Decision = Accept | Refuse | Postpone | Archive | Withdraw


@dataclass(frozen=True)
class Decided:
    """A decision applied: the proposal's new status and its history row."""

    proposal_id: int
    status: ProposalStatus
    event_id: int


def _check_status(proposal: Proposal, decision: Decision) -> None:
    if isinstance(decision, Withdraw):
        if proposal.status != ProposalStatus.ACCEPTED:
            raise NotAccepted(proposal.status)
        return
    allowed = (ProposalStatus.PENDING,) if isinstance(decision, Postpone) else UNDECIDED
    if proposal.status not in allowed:
        raise AlreadyDecided(proposal.status)


def _edited(proposal: Proposal, typed: str, settings: ConsultationSettings) -> str:
    """The edited text, composed and checked as a participant's; raises EditRefused."""
    prefix = settings.prefix.get(proposal.locale) or Translator(proposal.locale)("proposal.prefix")
    text = compose_proposal(typed, prefix)
    problem = check_proposal(text, prefix, settings)
    if problem is not None:
        raise EditRefused(problem)
    return text


async def _check_refusal(
    session: AsyncSession, proposal: Proposal, refusal: Refuse, settings: ConsultationSettings
) -> None:
    if refusal.reason not in settings.refusal_reasons:
        raise UnknownReason(refusal.reason, settings.refusal_reasons)
    if refusal.reason != ALREADY_EXISTS:
        if refusal.duplicate_of is not None:
            raise DuplicateNotExpected(refusal.reason)
        return
    if refusal.duplicate_of is None:
        raise DuplicateRequired()
    original = await session.get(Proposal, refusal.duplicate_of)
    if (
        original is None
        or original.id == proposal.id
        or original.consultation_id != proposal.consultation_id
        or original.status != ProposalStatus.ACCEPTED
    ):
        raise UnknownDuplicate(refusal.duplicate_of)


_STATUS_AFTER: dict[str, ProposalStatus] = {
    Accept.action: ProposalStatus.ACCEPTED,
    Refuse.action: ProposalStatus.REFUSED,
    Postpone.action: ProposalStatus.POSTPONED,
    Archive.action: ProposalStatus.ARCHIVED,
    Withdraw.action: ProposalStatus.WITHDRAWN,
}


async def decide(
    session: AsyncSession, proposal_id: int, decision: Decision, actor: Actor, now: datetime
) -> Decided:
    """Apply `decision` to the proposal, in the caller's transaction.

    Raises (changing nothing): UnknownProposal; AlreadyDecided (accept, refuse and archive
    need a pending or postponed proposal, postpone a pending one); NotAccepted (withdraw);
    Locked (another moderator holds it); UnknownReason, DuplicateRequired,
    DuplicateNotExpected, UnknownDuplicate (refuse); EditRefused (accept with a text).
    """
    proposal = await locked_proposal(session, proposal_id)
    _check_status(proposal, decision)
    if held_by_another(proposal, actor.organiser, now):
        assert proposal.locked_by is not None and proposal.locked_until is not None
        raise Locked(proposal.locked_by, proposal.locked_until)
    consultation = await session.get(Consultation, proposal.consultation_id)
    assert consultation is not None
    settings = settings_of(consultation)
    original_text = None
    if isinstance(decision, Accept) and decision.text is not None:
        text = _edited(proposal, decision.text, settings)
        if text != proposal.text:
            original_text, proposal.text = proposal.text, text
    if isinstance(decision, Refuse):
        await _check_refusal(session, proposal, decision, settings)
        proposal.refusal_reason = decision.reason

    status = _STATUS_AFTER[decision.action]
    proposal.status = status
    proposal.locked_by = proposal.locked_until = None
    proposal.updated_at = now
    session.add(proposal)
    refusal = decision if isinstance(decision, Refuse) else None
    event = ProposalEvent(
        proposal_id=proposal_id,
        action=decision.action,
        reason=refusal.reason if refusal else None,
        duplicate_of=refusal.duplicate_of if refusal else None,
        original_text=original_text,
        moderator=actor.organiser,
        source=actor.source.value,
        at=now,
    )
    session.add(event)
    if isinstance(decision, Accept | Refuse) and decision.notify:
        kind = NoticeKind.ACCEPTED if isinstance(decision, Accept) else NoticeKind.REFUSED
        await queue_notice(
            session,
            proposal,
            kind,
            now,
            reason=refusal.reason if refusal else None,
            duplicate_of=refusal.duplicate_of if refusal else None,
        )
    detail: dict[str, Any] = {"status": status.value}
    if refusal is not None:
        detail["reason"] = refusal.reason
        if refusal.duplicate_of is not None:
            detail["duplicate_of"] = refusal.duplicate_of
    if original_text is not None:
        detail["edited"] = True
    if isinstance(decision, Accept | Refuse) and not decision.notify:
        detail["notify"] = False
    await record_action(
        session,
        actor,
        f"proposal.{decision.action}",
        f"proposal:{proposal_id}",
        proposal.consultation_id,
        now,
        detail,
    )
    await session.flush()
    assert event.id is not None
    return Decided(proposal_id, status, event.id)


async def decide_many(
    session: AsyncSession,
    proposal_ids: list[int],
    decision: Decision,
    actor: Actor,
    now: datetime,
) -> dict[int, Decided | ModerationError]:
    """Apply `decision` to each proposal, in the caller's one transaction; per id, what was
    decided or why it was refused (a refusal changes nothing, the others still apply).

    One transaction, not one per proposal: checks come before writes, so a refused proposal
    leaves nothing to undo, and the selection is applied whole or, if the transaction fails
    (a crash, a lost connection), not at all: never half a bulk to find and redo. Rows are
    locked in id order, so two bulk decisions over the same proposals cannot deadlock.
    """
    outcome: dict[int, Decided | ModerationError] = {}
    for proposal_id in sorted(set(proposal_ids)):
        try:
            outcome[proposal_id] = await decide(session, proposal_id, decision, actor, now)
        except ModerationError as refused:
            outcome[proposal_id] = refused
    return outcome
