"""The tables of a consultation: who takes part, what they propose, how they vote.

Identifiers of people are pseudonymous (see `core.identity`); raw channel addresses live only in
`ChannelIdentity.address` and are erased by /forget.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Index, TypeDecorator, UniqueConstraint, event
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset on the way in)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Status(StrEnum):
    """Where a consultation is in its life."""

    DRAFT = "draft"
    OPEN = "open"
    VOTE_ONLY = "vote-only"
    CLOSED = "closed"


class Audience(StrEnum):
    CITIZENS = "citizens"
    EMPLOYEES = "employees"
    CLIENTS = "clients"


class ProposalStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    POSTPONED = "postponed"
    ARCHIVED = "archived"
    # Taken back after acceptance (post-moderation): out of every sequence, its votes kept.
    WITHDRAWN = "withdrawn"


class VoteKey(StrEnum):
    AGREE = "agree"
    DISAGREE = "disagree"
    NEUTRAL = "neutral"


class QualificationKey(StrEnum):
    LIKE_IT = "likeIt"
    DOABLE = "doable"
    PLATITUDE_AGREE = "platitudeAgree"
    NO_WAY = "noWay"
    IMPOSSIBLE = "impossible"
    PLATITUDE_DISAGREE = "platitudeDisagree"
    DO_NOT_UNDERSTAND = "doNotUnderstand"
    NO_OPINION = "noOpinion"
    DO_NOT_CARE = "doNotCare"


# A qualification is valid only with the vote key it qualifies (as in Make.org's voting model).
QUALIFICATIONS: dict[VoteKey, tuple[QualificationKey, ...]] = {
    VoteKey.AGREE: (
        QualificationKey.LIKE_IT,
        QualificationKey.DOABLE,
        QualificationKey.PLATITUDE_AGREE,
    ),
    VoteKey.DISAGREE: (
        QualificationKey.NO_WAY,
        QualificationKey.IMPOSSIBLE,
        QualificationKey.PLATITUDE_DISAGREE,
    ),
    VoteKey.NEUTRAL: (
        QualificationKey.DO_NOT_UNDERSTAND,
        QualificationKey.NO_OPINION,
        QualificationKey.DO_NOT_CARE,
    ),
}


def _now_field() -> Any:
    return Field(sa_type=UTCDateTime)


class Consultation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, unique=True)
    status: str = Field(default=Status.DRAFT, max_length=16)
    audience: str = Field(default=Audience.CITIZENS, max_length=16)
    default_locale: str = Field(max_length=16)
    locales: list[str] = Field(sa_type=JSON)
    question: dict[str, str] = Field(sa_type=JSON)
    privacy_notice: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    settings: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    profile_questions: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    starts_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _now_field()
    updated_at: datetime = _now_field()


class Participant(SQLModel, table=True):
    """A pseudonymous person: no name, no channel id; only what the conversation needs.

    `step` and `state` are the conversation's position (see `core.conversation`): kept here, in
    the database, so that any worker can take the participant's next message.
    """

    id: int | None = Field(default=None, primary_key=True)
    locale: str | None = Field(default=None, max_length=16)
    current_consultation_id: int | None = Field(default=None, foreign_key="consultation.id")
    step: str = Field(default="new", max_length=32)
    state: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = _now_field()
    forgotten_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ChannelIdentity(SQLModel, table=True):
    """(channel, keyed hash of the channel's user id) -> participant."""

    __table_args__ = (UniqueConstraint("channel", "identity_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    identity_hash: str = Field(max_length=64)
    address: str | None = Field(default=None, max_length=255)
    participant_id: int = Field(foreign_key="participant.id", index=True)
    created_at: datetime = _now_field()
    # When the participant last wrote on this channel (to the minute): WhatsApp only lets a
    # business send free text within 24 hours of it.
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the platform said this address can no longer be reached (the participant blocked the
    # bot, left the workspace): broadcasts skip it from then on; a message of theirs clears it.
    unreachable_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The id this person had on the platform a conversation was imported from (a Polis
    # participant number, not a channel's user id): exports give it back (`core.results.export`).
    ref: str | None = Field(default=None, max_length=64)


class Participation(SQLModel, table=True):
    """One participant in one consultation: recruitment source, consent, profile, subscription.

    A profile answer of "" records that the participant chose not to answer.
    """

    __table_args__ = (UniqueConstraint("participant_id", "consultation_id"),)

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True)
    consultation_id: int = Field(foreign_key="consultation.id", index=True)
    source: str | None = Field(default=None, max_length=64)
    consented_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    profile: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    subscribed: bool = True
    # The language the participant was last written to in this consultation (their choice, else
    # their app's language): what a broadcast or a reminder is written in.
    locale: str | None = Field(default=None, max_length=16)
    created_at: datetime = _now_field()
    updated_at: datetime = _now_field()


_SCOPE = ("consultation_id", "status", "locale")
_POOL = ("id", "author_id", "created_at", "agree_count", "disagree_count", "neutral_count")


class Proposal(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("consultation_id", "ref"),
        # The two ways sequencing finds its pool, with every column the pool reads (see
        # core.sequencing): the database answers from the index alone.
        Index("ix_proposal_fair_order", *_SCOPE, "vote_count", *_POOL),
        Index("ix_proposal_shuffle", *_SCOPE, "shuffle", "vote_count", *_POOL),
        # The current leaders of each ranking, read next to the sample (contenders).
        Index("ix_proposal_agree_score", *_SCOPE, "agree_score", "vote_count", *_POOL),
        Index("ix_proposal_split_score", *_SCOPE, "split_score", "vote_count", *_POOL),
        # The moderation queue: a consultation's pending proposals, oldest first.
        Index("ix_proposal_queue", "consultation_id", "status", "created_at", "id"),
        # Moderation flags (core.moderation.flags): copies of one text, and a consultation's
        # latest proposals (a recruitment source's burst).
        Index("ix_proposal_text_key", "consultation_id", "text_key"),
        Index("ix_proposal_recent", "consultation_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    consultation_id: int = Field(foreign_key="consultation.id")
    ref: str | None = Field(default=None, max_length=64)
    locale: str = Field(max_length=16)
    text: str = Field(max_length=1000)
    author_id: int | None = Field(default=None, foreign_key="participant.id", index=True)
    status: str = Field(default=ProposalStatus.PENDING, max_length=16)
    refusal_reason: str | None = Field(default=None, max_length=255)
    vote_count: int = 0
    # Sequence votes (trusted) by key: Tally's rows for the three keys, kept on the proposal
    # as well so that sequencing reads a pool's counters with the pool, in one query.
    agree_count: int = 0
    disagree_count: int = 0
    neutral_count: int = 0
    # Scores of those counts that sequencing ranks contenders by (core.scoring.contender_scores),
    # kept by the same statements as the counts (core.voting). A new proposal has none: 0.
    agree_score: float = 0.0
    split_score: float = 0.0
    # A fixed pseudo-random place in [0, 1): sequencing samples the pool from a random point of
    # this index, so a sample costs the same with 100 proposals or 100,000 (see core.sequencing).
    shuffle: float | None = Field(default=None)
    # The moderator serving this proposal from the queue, until when (core.moderation): on the
    # row itself, so that PostgreSQL's SKIP LOCKED re-reads it when two moderators race.
    locked_by: str | None = Field(default=None, max_length=255)
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # What a moderator should look at (core.moderation.flags): flag values, sorted, separated
    # by spaces ("" for none), so that both databases filter and order on it as a string.
    flags: str = Field(default="", max_length=255)
    # A participant's text, normalised and hashed: copies of it from others are found by index.
    text_key: str | None = Field(default=None, max_length=64)
    created_at: datetime = _now_field()
    updated_at: datetime = _now_field()


@event.listens_for(Proposal, "before_insert")
def _place_in_shuffle(_mapper: Any, _connection: Any, proposal: Proposal) -> None:
    if proposal.shuffle is None:
        parts = (proposal.consultation_id, proposal.ref, proposal.text, proposal.created_at)
        digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
        proposal.shuffle = int.from_bytes(digest[:8], "big") / 2**64


class ProposalTerm(SQLModel, table=True):
    """A stemmed word of a proposal (`core.moderation.text.terms`): the inverted index that
    finds the proposals sharing a new one's rarest words (`core.moderation.similarity`)."""

    # A lookup reads, from this index alone, the proposals in the wanted statuses that have a
    # term: the proposal's status is copied here (and kept when it changes) for that.
    __table_args__ = (
        Index("ix_proposalterm_lookup", "consultation_id", "term", "status", "proposal_id"),
    )

    proposal_id: int = Field(foreign_key="proposal.id", primary_key=True)
    term: str = Field(max_length=64, primary_key=True)
    consultation_id: int = Field(foreign_key="consultation.id")
    status: str = Field(max_length=16)


class TermCount(SQLModel, table=True):
    """How many of a consultation's proposals have `term` (its document frequency); the term
    "" counts the proposals themselves. Kept with `ProposalTerm`, in the same flush."""

    consultation_id: int = Field(foreign_key="consultation.id", primary_key=True)
    term: str = Field(max_length=64, primary_key=True)
    proposals: int = 0


# The similarity index follows every proposal written through the ORM, whichever code wrote it
# (a participant, a seed, an import, an edit at acceptance, a decision). Imported when called:
# importing core.moderation at load time would import these models back, half made.
@event.listens_for(Proposal, "after_insert")
def _index_new_proposal(_mapper: Any, connection: Any, proposal: Proposal) -> None:
    from core.moderation.index import index_proposal

    index_proposal(connection, proposal)


@event.listens_for(Proposal, "after_update")
def _index_changed_proposal(_mapper: Any, connection: Any, proposal: Proposal) -> None:
    from core.moderation.index import reindex_if_changed

    reindex_if_changed(connection, proposal)


class Idea(SQLModel, table=True):
    """A named group of a consultation's proposals that say the same (moderators make them)."""

    __table_args__ = (UniqueConstraint("consultation_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    consultation_id: int = Field(foreign_key="consultation.id")
    name: str = Field(max_length=200)
    created_by: str = Field(max_length=255)
    created_at: datetime = _now_field()


class IdeaProposal(SQLModel, table=True):
    """A proposal's idea: one at most (adding it to another moves it)."""

    __table_args__ = (Index("ix_ideaproposal_idea", "idea_id", "proposal_id"),)

    proposal_id: int = Field(foreign_key="proposal.id", primary_key=True)
    idea_id: int = Field(foreign_key="idea.id")
    added_at: datetime = _now_field()


class ProposalEvent(SQLModel, table=True):
    """One moderation decision on a proposal: its history, oldest first.

    `moderator` is an organiser (an e-mail, "cli:<login>"), never a participant; `original_text`
    is the text before an edit at acceptance.
    """

    # A moderator's latest decision: whose batch an author-batch queue serves next.
    __table_args__ = (Index("ix_proposalevent_moderator", "moderator", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    proposal_id: int = Field(foreign_key="proposal.id", index=True)
    action: str = Field(max_length=16)
    reason: str | None = Field(default=None, max_length=64)
    duplicate_of: int | None = Field(default=None, foreign_key="proposal.id")
    original_text: str | None = Field(default=None, max_length=1000)
    moderator: str = Field(max_length=255)
    source: str = Field(max_length=16)
    at: datetime = _now_field()


class AuditEntry(SQLModel, table=True):
    """An organiser's action: who, what, on what, from where, when. Append-only.

    Never names a participant: `target` is an object of the consultation ("proposal:42").
    """

    __table_args__ = (Index("ix_auditentry_consultation", "consultation_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    consultation_id: int | None = Field(default=None, foreign_key="consultation.id")
    actor: str = Field(max_length=255)
    action: str = Field(max_length=32)
    target: str = Field(max_length=64)
    source: str = Field(max_length=16)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    at: datetime = _now_field()


class Organiser(SQLModel, table=True):
    """A person who runs consultations: an e-mail (not participant data), signed in by one-time
    codes, scripts by API tokens (`core.organisers`).

    `session_version` goes up when the organiser is revoked or signs out of the console:
    console sessions carrying an older one are signed out. A revoked organiser (`revoked_at`)
    can do nothing until added again.
    """

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=255, unique=True)
    session_version: int = 0
    created_at: datetime = _now_field()
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OrganiserGrant(SQLModel, table=True):
    """An organiser's role on one consultation, or on every one (`consultation_id` None)."""

    id: int | None = Field(default=None, primary_key=True)
    organiser_id: int = Field(foreign_key="organiser.id", index=True)
    role: str = Field(max_length=16)
    consultation_id: int | None = Field(default=None, foreign_key="consultation.id")
    created_at: datetime = _now_field()


class OrganiserSecret(SQLModel, table=True):
    """An API token or a one-time sign-in code of an organiser: `selector` finds the row, and
    only a hash of the rest is kept (the secret itself is shown once and never stored).

    A sign-in code has an `expires_at` and is `used_at` once; a token lasts until `revoked_at`.
    """

    id: int | None = Field(default=None, primary_key=True)
    organiser_id: int = Field(foreign_key="organiser.id", index=True)
    kind: str = Field(max_length=16)
    selector: str = Field(max_length=32, unique=True)
    secret_hash: str = Field(max_length=64)
    created_at: datetime = _now_field()
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SignInAttempt(SQLModel, table=True):
    """How many sign-in attempts a key (a hash of an address or an e-mail) made in one window:
    in the database, so that the limit holds across workers."""

    key_hash: str = Field(max_length=64, primary_key=True)
    window_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    count: int = 0


class NoticeKind(StrEnum):
    """What a notice tells a proposal's author."""

    ACCEPTED = "accepted"
    REFUSED = "refused"


class NoticeState(StrEnum):
    """A notice's way out: queued -> claimed (a worker is sending it) -> sent; or failed (the
    platform refused it, or there is nobody to send it to), unknown (its worker died while
    sending: it may have arrived, so it is never sent again silently), waiting (WhatsApp outside
    the 24-hour window with no template to send)."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    WAITING = "waiting"


class OutboxRow(SQLModel):
    """The columns of a row in an outbox (notices, moderators' chat posts, broadcast messages):
    its way out (`NoticeState`), the attempts, who claimed it and when, what went wrong. The
    claim and record mechanics of `core.notices` work on any table with them."""

    state: str = Field(default=NoticeState.QUEUED, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = _now_field()
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    problem: str | None = Field(default=None, max_length=255)
    created_at: datetime = _now_field()


class Notice(OutboxRow, table=True):
    """The author of a proposal told of a decision on it, through an outbox (`core.notices`).

    Written in the decision's transaction; a delivery worker claims it in a transaction of its
    own before sending, so a crash leaves it queued (sent later) or claimed by a dead worker
    (marked unknown), never sent twice. `problem` says why one failed or waits, in words that
    name nobody.
    """

    __table_args__ = (
        UniqueConstraint("proposal_id", "kind"),
        # What a worker claims next: the ready rows of a state, oldest first.
        Index("ix_notice_ready", "state", "next_attempt_at", "id"),
        Index("ix_notice_consultation", "consultation_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    consultation_id: int = Field(foreign_key="consultation.id")
    proposal_id: int = Field(foreign_key="proposal.id")
    participant_id: int = Field(foreign_key="participant.id")
    channel: str | None = Field(default=None, max_length=32)
    kind: str = Field(max_length=16)
    reason: str | None = Field(default=None, max_length=64)
    duplicate_of: int | None = Field(default=None, foreign_key="proposal.id")
    locale: str = Field(max_length=16)


class Vote(SQLModel, table=True):
    """One participant's vote on one proposal; a second tap changes it, never adds one."""

    __table_args__ = (UniqueConstraint("participant_id", "proposal_id"),)

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True)
    proposal_id: int = Field(foreign_key="proposal.id", index=True)
    key: str = Field(max_length=16)
    trusted: bool = True
    created_at: datetime = _now_field()
    updated_at: datetime = _now_field()


class Qualification(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("participant_id", "proposal_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True)
    proposal_id: int = Field(foreign_key="proposal.id", index=True)
    key: str = Field(max_length=32)
    trusted: bool = True
    created_at: datetime = _now_field()


class Tally(SQLModel, table=True):
    """Per-proposal counter of one vote or qualification key at one trust level.

    Updated in the vote's transaction, so scoring and sequencing read counters, never votes.
    """

    proposal_id: int = Field(foreign_key="proposal.id", primary_key=True)
    key: str = Field(max_length=32, primary_key=True)
    trusted: bool = Field(primary_key=True)
    count: int = 0


class ProcessedEvent(SQLModel, table=True):
    """Idempotency keys of inbound events already handled (insert fails on a duplicate)."""

    channel: str = Field(max_length=32, primary_key=True)
    key: str = Field(max_length=128, primary_key=True)
    processed_at: datetime = _now_field()


class OwedReply(SQLModel, table=True):
    """A participant is owed what an event led to, until the channel says it was sent.

    Written in the event's own transaction and deleted once the replies went out, so a row
    that outlives its `owner` (a worker killed between the commit and the send) says who was
    left waiting: another worker then sends them their current question again
    (`core.outbox`). `event_key` finds the row when the platform delivers the event again.
    """

    __table_args__ = (Index("ix_owedreply_event", "channel", "event_key"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    event_key: str = Field(max_length=128)
    participant_id: int = Field(foreign_key="participant.id", index=True)
    # The language the replies were in: the question asked again is asked in it.
    locale: str | None = Field(default=None, max_length=16)
    # The participant's turn they answered (`Turn.number`): a later turn makes them stale.
    turn: int | None = None
    owner: str = Field(max_length=64, index=True)
    created_at: datetime = _now_field()


class DeliveryWorker(SQLModel, table=True):
    """A process that sends replies, and when it last said it was alive."""

    id: str = Field(max_length=64, primary_key=True)
    beat_at: datetime = _now_field()


class ModerationChat(SQLModel, table=True):
    """A moderators' group or channel connected to a consultation (`core.moderation.chat`):
    its new proposals are posted there, with buttons to decide them."""

    __table_args__ = (UniqueConstraint("channel", "chat_id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    chat_id: str = Field(max_length=64)  # a group's id (negative on Telegram), not a person's
    consultation_id: int = Field(foreign_key="consultation.id", index=True)
    locale: str = Field(max_length=16)
    connected_at: datetime = _now_field()


class ChatModerator(SQLModel, table=True):
    """A chat account linked to an organiser account by a one-time code; only a hash of the
    account's channel id is kept."""

    __table_args__ = (UniqueConstraint("channel", "member_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    member_hash: str = Field(max_length=64)
    organiser_id: int = Field(foreign_key="organiser.id", index=True)
    linked_at: datetime = _now_field()


class ChatLinkCode(SQLModel, table=True):
    """A one-time code an organiser sends as `/link CODE` in a moderators' chat: only its
    hash is kept; it lasts a day and links once."""

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(max_length=64, unique=True)
    organiser_id: int = Field(foreign_key="organiser.id", index=True)
    created_at: datetime = _now_field()
    expires_at: datetime = _now_field()
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ChatPost(OutboxRow, table=True):
    """A proposal shown in a moderators' chat, through an outbox with the states of `Notice`:
    `shows` is the status the message shows (`pending` for the post itself, then one row per
    later status, each an edit of the post's `message_id`)."""

    __table_args__ = (
        UniqueConstraint("chat_ref", "proposal_id", "shows"),
        Index("ix_chatpost_ready", "state", "next_attempt_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    chat_ref: int = Field(foreign_key="moderationchat.id")
    proposal_id: int = Field(foreign_key="proposal.id", index=True)
    shows: str = Field(max_length=16)
    message_id: str | None = Field(default=None, max_length=64)


class BroadcastKind(StrEnum):
    """Who wrote a broadcast: an organiser, or the consultation's automatic reminders."""

    MANUAL = "manual"
    STALLED = "stalled"  # once, to a participant who stopped mid-sequence
    DIGEST = "digest"  # new proposals to vote on since the last visit, at most weekly
    CLOSING = "closing"  # the consultation closes soon
    RESULTS = "results"  # the results are published


class BroadcastState(StrEnum):
    """scheduled (an occurrence is to come) -> done (none is); paused (nothing is planned or
    sent until resumed); cancelled (for good: its queued messages are not sent)."""

    SCHEDULED = "scheduled"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"


class Broadcast(SQLModel, table=True):
    """A message an organiser (or a reminder) sends to an audience of a consultation, once or
    on a schedule (`core.broadcasts`). `texts` holds one text per locale; `audience` is an
    expression of `core.broadcasts.audience`; `every` a cron expression in the consultation's
    time zone; `next_run_at` the next occurrence to plan (None when there is none)."""

    __table_args__ = (Index("ix_broadcast_due", "state", "next_run_at"),)

    id: int | None = Field(default=None, primary_key=True)
    consultation_id: int = Field(foreign_key="consultation.id", index=True)
    kind: str = Field(default=BroadcastKind.MANUAL, max_length=16)
    texts: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    button: bool = False
    audience: str = Field(default="all", max_length=2000)
    # A WhatsApp template for recipients outside the 24-hour window: {"name", "language":
    # {locale: code}, "parameters": [...]}; None: such recipients wait for the window.
    template: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    paid: bool = False  # Telegram's allow_paid_broadcast (faster, charged in Stars)
    first_at: datetime = _now_field()
    every: str | None = Field(default=None, max_length=120)
    next_run_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    state: str = Field(default=BroadcastState.SCHEDULED, max_length=16)
    created_by: str = Field(max_length=255)
    created_at: datetime = _now_field()
    updated_at: datetime = _now_field()


class BroadcastRun(SQLModel, table=True):
    """One occurrence of a broadcast, planned once (the unique constraint makes a second
    planning of the same occurrence, by another process, a no-op): its recipients are
    `BroadcastMessage` rows written in the same transaction."""

    __table_args__ = (UniqueConstraint("broadcast_id", "fire_at"),)

    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: int = Field(foreign_key="broadcast.id", index=True)
    fire_at: datetime = _now_field()
    planned_at: datetime = _now_field()
    recipients: int = 0  # messages queued
    skipped: dict[str, int] = Field(default_factory=dict, sa_type=JSON)  # why -> how many


class BroadcastMessage(OutboxRow, table=True):
    """One recipient of one occurrence: the broadcasts' outbox, with the states of `Notice`
    (queued -> claimed -> sent; failed, unknown, waiting). `recipient` names the recipient
    within the run (`p:<participant id>`, or a keyed hash of an address for people the bot has
    not met); `address` is kept only for those, only until the message is settled."""

    __table_args__ = (
        UniqueConstraint("run_id", "recipient"),
        Index("ix_broadcastmessage_ready", "state", "next_attempt_at", "id"),
        Index("ix_broadcastmessage_broadcast", "broadcast_id", "state"),
        Index("ix_broadcastmessage_participant", "participant_id", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="broadcastrun.id")
    broadcast_id: int = Field(foreign_key="broadcast.id")
    consultation_id: int = Field(foreign_key="consultation.id")
    recipient: str = Field(max_length=64)
    participant_id: int | None = Field(default=None, foreign_key="participant.id")
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    address: str | None = Field(default=None, max_length=255)
    channel: str = Field(max_length=32)
    locale: str = Field(max_length=16)


class Contact(SQLModel, table=True):
    """Someone the bot has not met, whom an organiser may reach: a WhatsApp number imported
    from a CRM's CSV with its opt-in. `identity_hash` is the keyed hash a participant on that
    channel would get (`core.identity`), so a contact who joins is recognised; `address` is
    what sending needs; an unsubscribed contact is never written to again."""

    __table_args__ = (UniqueConstraint("consultation_id", "list_name", "channel", "identity_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    consultation_id: int = Field(foreign_key="consultation.id", index=True)
    list_name: str = Field(max_length=64)
    channel: str = Field(max_length=32)
    identity_hash: str = Field(max_length=64)
    address: str | None = Field(default=None, max_length=255)
    locale: str | None = Field(default=None, max_length=16)
    opted_in_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    unsubscribed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _now_field()


class SchedulerLease(SQLModel, table=True):
    """Which process runs the scheduler (`bots.scheduler`): the one whose lease has not
    expired; it renews it well before `expires_at`, and another takes it over after."""

    name: str = Field(max_length=32, primary_key=True)
    holder: str = Field(max_length=64)
    expires_at: datetime = _now_field()


class ResultSnapshot(SQLModel, table=True):
    """A consultation's results as computed at `computed_at` (opinion groups, consensus,
    representative statements): the dashboard and the API read the latest one and never
    recompute on a page view. `payload` is `core.results.snapshot`'s JSON; `seed` the seed
    the computation drew its random starts from."""

    __table_args__ = (Index("ix_resultsnapshot_latest", "consultation_id", "computed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    consultation_id: int = Field(foreign_key="consultation.id")
    computed_at: datetime = _now_field()
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    seed: int = 0


class ParticipantTrust(SQLModel, table=True):
    """An untrusted participant of one consultation, as last assessed from their behaviour
    (`core.results.trust`): `reasons` are the rules that held, separated by spaces. A
    participant without a row was trusted at `assessed_at` of the consultation's others; the
    rows are replaced whole at each assessment. Organisers only ever see counts of them."""

    consultation_id: int = Field(foreign_key="consultation.id", primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", primary_key=True)
    reasons: str = Field(max_length=255)
    assessed_at: datetime = _now_field()
