"""Moderation: the queue with its locks, decisions, each proposal's history, the audit log.

Every entrypoint (CLI, API, console, moderators' chat) is a thin layer over these functions;
each runs in the caller's transaction, so that what must go with a decision (the author's
notice, later) is written with it or not at all.
"""

from core.moderation.actors import Actor, Source
from core.moderation.decisions import (
    ALREADY_EXISTS,
    Accept,
    Archive,
    Decided,
    Decision,
    Postpone,
    Refuse,
    Withdraw,
    decide,
    decide_many,
)
from core.moderation.errors import (
    AlreadyDecided,
    DuplicateNotExpected,
    DuplicateRequired,
    EditRefused,
    Locked,
    ModerationError,
    NotAccepted,
    UnknownDuplicate,
    UnknownProposal,
    UnknownReason,
)
from core.moderation.history import audit_log, proposal_history, record_action
from core.moderation.ideas import (
    IdeaNameRefused,
    IdeaView,
    UnknownIdea,
    add_to_idea,
    create_idea,
    ideas_of,
)
from core.moderation.queue import QueueOrder, Served, next_for, pending_proposals, renew_lock
from core.moderation.similarity import Similar, Similarity, TermSimilarity, similar_proposals

__all__ = [
    "ALREADY_EXISTS",
    "Accept",
    "Actor",
    "AlreadyDecided",
    "Archive",
    "Decided",
    "Decision",
    "DuplicateNotExpected",
    "DuplicateRequired",
    "EditRefused",
    "IdeaNameRefused",
    "IdeaView",
    "Locked",
    "ModerationError",
    "NotAccepted",
    "Postpone",
    "QueueOrder",
    "Refuse",
    "Served",
    "Similar",
    "Similarity",
    "Source",
    "TermSimilarity",
    "UnknownDuplicate",
    "UnknownIdea",
    "UnknownProposal",
    "UnknownReason",
    "Withdraw",
    "add_to_idea",
    "audit_log",
    "create_idea",
    "decide",
    "decide_many",
    "ideas_of",
    "next_for",
    "pending_proposals",
    "proposal_history",
    "record_action",
    "renew_lock",
    "similar_proposals",
]
