"""Why a moderation request was refused; whatever raised one changed nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from core.proposals import TextProblem


class ModerationError(Exception):
    """A queue request or a decision that cannot be applied as asked.

    `kind` names the refusal for every surface that says it (CLI, API, console: their msgids
    end in it, and the API and console pick their HTTP status by it); `values()` is what that
    sentence names, untranslated (a status id, a `TextProblem`, a datetime)."""

    kind: ClassVar[str] = "refused"

    def values(self) -> dict[str, Any]:
        """The values the refusal's sentence names, untranslated."""
        return {}


class UnknownProposal(ModerationError):
    """No proposal has this id."""

    kind = "unknown_proposal"

    def __init__(self, proposal_id: int) -> None:
        super().__init__(f"no proposal {proposal_id}")
        self.proposal_id = proposal_id

    def values(self) -> dict[str, Any]:
        return {"id": self.proposal_id}


class Locked(ModerationError):
    """Another moderator was served this proposal and holds it until `expires_at`."""

    kind = "locked"

    def __init__(self, holder: str, expires_at: datetime) -> None:
        super().__init__(f"locked by {holder} until {expires_at.isoformat()}")
        self.holder = holder
        self.expires_at = expires_at

    def values(self) -> dict[str, Any]:
        return {"holder": self.holder, "expires_at": self.expires_at}


class AlreadyDecided(ModerationError):
    """The proposal was decided already (`status`): a decision is taken once."""

    kind = "already_decided"

    def __init__(self, status: str) -> None:
        super().__init__(f"already {status}")
        self.status = status

    def values(self) -> dict[str, Any]:
        return {"status": self.status}


class NotAccepted(ModerationError):
    """Only an accepted proposal can be withdrawn; this one is `status`."""

    kind = "not_accepted"

    def __init__(self, status: str) -> None:
        super().__init__(f"{status}, not accepted")
        self.status = status

    def values(self) -> dict[str, Any]:
        return {"status": self.status}


class UnknownReason(ModerationError):
    """`reason` is not one of the consultation's refusal reasons (`allowed`)."""

    kind = "unknown_reason"

    def __init__(self, reason: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{reason!r} is not one of {', '.join(allowed)}")
        self.reason = reason
        self.allowed = allowed

    def values(self) -> dict[str, Any]:
        return {"reason": self.reason, "allowed": ", ".join(self.allowed)}


class DuplicateRequired(ModerationError):
    """A refusal as `already-exists` must name the accepted proposal it repeats."""

    kind = "duplicate_required"


class DuplicateNotExpected(ModerationError):
    """Only a refusal as `already-exists` names a duplicate; this one's reason is `reason`."""

    kind = "duplicate_not_expected"

    def __init__(self, reason: str) -> None:
        super().__init__(f"a refusal as {reason!r} names no duplicate")
        self.reason = reason

    def values(self) -> dict[str, Any]:
        return {"reason": self.reason}


class UnknownDuplicate(ModerationError):
    """`duplicate_of` is not another accepted proposal of the same consultation."""

    kind = "unknown_duplicate"

    def __init__(self, duplicate_of: int) -> None:
        super().__init__(f"{duplicate_of} is not an accepted proposal of this consultation")
        self.duplicate_of = duplicate_of

    def values(self) -> dict[str, Any]:
        return {"id": self.duplicate_of}


class EditRefused(ModerationError):
    """The edited text breaks the consultation's rules for a proposal (`problem` says which)."""

    kind = "edit_refused"

    def __init__(self, problem: TextProblem) -> None:
        super().__init__(problem.msgid)
        self.problem = problem

    def values(self) -> dict[str, Any]:
        return {"problem": self.problem}
