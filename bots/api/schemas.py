"""What the organiser API reads and answers (`XPublic` out, request bodies in): the OpenAPI
document is generated from these. Nothing here names a participant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.ids import ID_MAX

# A body field longer than any proposal is refused before it reaches the core.
TEXT_MAX = 5000


class ProposalPublic(BaseModel):
    id: int
    text: str
    locale: str
    status: str
    created_at: datetime
    flags: list[str] = Field(description="why a moderator should look closer; a human decides")
    locked_by: str | None = Field(description="the moderator holding it from the queue, if any")
    lock_expires_at: datetime | None


class SimilarPublic(BaseModel):
    proposal_id: int
    text: str
    status: str
    score: float = Field(ge=0, le=1)


class NextPublic(BaseModel):
    """The proposal the queue served, held for the caller until `lock_expires_at`."""

    proposal: ProposalPublic
    flags: list[str]
    similar: list[SimilarPublic] = Field(
        description="accepted and pending proposals that say nearly the same, best first"
    )
    lock_expires_at: datetime


class ProposalsPage(BaseModel):
    total: int = Field(description="how many proposals match, over every page")
    limit: int
    offset: int
    proposals: list[ProposalPublic]


class DecidedPublic(BaseModel):
    proposal_id: int
    status: str
    event_id: int = Field(description="the decision's entry in the proposal's history")


class LockPublic(BaseModel):
    proposal_id: int
    lock_expires_at: datetime


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is said, not ignored


class AcceptBody(_Body):
    text: str | None = Field(
        default=None,
        max_length=TEXT_MAX,
        description="a light edit, checked as a participant's text is; the original is kept",
    )
    notify: bool = Field(default=True, description="tell the author")


class RefuseBody(_Body):
    reason: str = Field(max_length=64, description="one of the consultation's refusal reasons")
    duplicate_of: int | None = Field(
        default=None,
        ge=1,
        le=ID_MAX,
        description="with the reason already-exists: the accepted proposal it repeats",
    )
    notify: bool = Field(default=True, description="tell the author why")


class AuditPublic(BaseModel):
    id: int
    consultation: str | None = Field(description="the consultation's slug, if the action had one")
    actor: str
    action: str
    target: str
    source: str
    detail: dict[str, Any]
    at: datetime


class AuditPage(BaseModel):
    entries: list[AuditPublic] = Field(description="newest first")
    next_before: int | None = Field(description="pass as ?before= for the next page")


class Problem(BaseModel):
    """A refusal: what to fix, and its message id."""

    detail: str
    code: str


def refusals(described: dict[int, str], *statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route for OpenAPI: each refusal status with its `Problem` body and
    what it means on that resource (`described`)."""
    return {status: {"model": Problem, "description": described[status]} for status in statuses}
