"""An organiser sends an author's notice again (`core.notices`): one marked unknown (its worker
died mid-send: it may have arrived), once someone judged that telling twice is better than not
at all; or one the platform refused (the author has unblocked the bot since). The outbox never
does it on its own."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Notice, NoticeState
from core.moderation.actors import Actor
from core.moderation.errors import ModerationError
from core.moderation.history import record_action
from core.notices import FORGOTTEN

RESENDABLE = (NoticeState.UNKNOWN, NoticeState.FAILED)


class UnknownNotice(ModerationError):
    """The consultation has no notice with this id."""

    def __init__(self, notice_id: int) -> None:
        super().__init__(f"no notice {notice_id}")
        self.notice_id = notice_id


class NotResendable(ModerationError):
    """The notice is `state` (only unknown and failed ones are sent again), or its author
    erased their address."""

    def __init__(self, notice_id: int, state: str) -> None:
        super().__init__(f"notice {notice_id} is {state}")
        self.notice_id = notice_id
        self.state = state


async def resend_notice(
    session: AsyncSession, consultation_id: int, notice_id: int, actor: Actor, now: datetime
) -> None:
    """Queue a consultation's unknown or failed notice again, in the caller's transaction, and
    write it in the audit log. Raises UnknownNotice, NotResendable (changing nothing)."""
    notice = (
        await session.exec(
            select(Notice)
            .where(Notice.id == notice_id, Notice.consultation_id == consultation_id)
            .with_for_update()
        )
    ).first()
    if notice is None:
        raise UnknownNotice(notice_id)
    if notice.state not in RESENDABLE or notice.problem == FORGOTTEN:
        raise NotResendable(notice_id, notice.state)
    was = notice.state
    notice.state, notice.attempts, notice.next_attempt_at = NoticeState.QUEUED, 0, now
    notice.claimed_by = notice.claimed_at = notice.problem = None
    session.add(notice)
    detail = {"was": was, "proposal": notice.proposal_id}
    await record_action(
        session, actor, "notice.resend", f"notice:{notice_id}", consultation_id, now, detail
    )
