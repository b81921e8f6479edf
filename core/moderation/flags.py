"""Moderation flags: what a moderator should look at in a proposal. A flag informs, a human
decides: nothing is held back or refused because of one.

Text flags (another language, a link, an e-mail address, a phone number, shouting, repeated
characters) are pure functions of the text. The others look at the consultation: the same
text from several participants, many proposals from one participant or from one recruitment
source in a short time (the consultation's `flags` settings). Flags are stored on the
proposal when it is submitted, in its transaction; a later copy or burst flags the earlier
proposals it concerns in that same transaction.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import case, func, literal
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import FlagSettings, settings_of
from core.i18n import Translator
from core.models import Consultation, Participation, Proposal
from core.moderation.language import other_language


class Flag(StrEnum):
    """Why a proposal deserves a closer look; a label's message id is `moderation.flag.<value>`."""

    OTHER_LANGUAGE = "other-language"
    LINK = "link"
    EMAIL = "email"
    PHONE = "phone"
    SHOUTING = "shouting"
    REPEATED_CHARACTERS = "repeated-characters"
    SAME_TEXT = "same-text"
    BURST_AUTHOR = "burst-author"
    BURST_SOURCE = "burst-source"


_EMAIL = re.compile(
    r"[\w.+-]{1,64}\s*(?:@|[\[(]\s*(?:at|arobase)\s*[\])])\s*[\w-]+"
    r"(?:\s*(?:\.|[\[(]\s*(?:dot|point)\s*[\])])\s*[\w-]{1,63}){1,4}",
    re.IGNORECASE,
)
# Common top-level domains only: "e.g.", "etc.", "3.5" or "M.Dupont" are not links.
_TLD = (
    r"(?:com|org|net|info|biz|io|co|me|ly|gl|app|dev|xyz|site|online|shop|tv|fr|be|ch|ca|de|"
    r"es|it|nl|pt|uk|eu|us|ru|cn|gouv|gov|edu)"
)
_LINK = re.compile(
    r"(?:\b(?:https?://|www\.)\S+"
    rf"|\b[a-z0-9][\w-]{{0,62}}(?:\.[\w-]{{1,63}}){{0,4}}\.{_TLD}(?![\w.-]*\w)"
    # spelled out to get past filters: "example dot com", "exemple point fr", "site[.]org"
    rf"|\b[a-z0-9][\w-]{{0,62}}\s*(?:\[\.\]|\(\.\)|[\[(]?\s*\b(?:dot|point)\b\s*[\])]?)\s*{_TLD}\b)",
    re.IGNORECASE,
)
# A run of digits with the separators phone numbers are written with; what it holds decides.
# Bounded repetitions (here and in _LINK) keep a 1,000-character text's scan linear.
_DIGITS = re.compile(r"\+?\(?\d[\d\s().-]{5,30}\d")
_GROUP = re.compile(r"\d+")
_YEAR = re.compile(r"(?:19|20)\d\d")
_REPEATED = re.compile(r"([^\d\s])\1{3,}")
SHOUTING_LETTERS = 16  # fewer cased letters than this is too short to be shouting
SHOUTING_SHARE = 0.7  # upper-case share of the cased letters


def _looks_like_phone(found: str) -> bool:
    """Whether a run of digits and separators is a phone number rather than an amount, a
    year or a range of years (dates hold at most 8 digits)."""
    groups = _GROUP.findall(found)
    digits = sum(len(g) for g in groups)
    if found.startswith("+"):
        return 8 <= digits <= 15
    if not 9 <= digits <= 15:
        return False
    if len(groups) > 1 and all(len(g) == 3 for g in groups[1:]) and len(groups[0]) <= 3:
        return False  # thousands: "10 000 000 000"
    return not all(_YEAR.fullmatch(g) for g in groups)  # "1990 2000 2010"


def has_phone(body: str) -> bool:
    return any(_looks_like_phone(m.group().strip()) for m in _DIGITS.finditer(body))


def is_shouting(body: str) -> bool:
    cased = [ch for ch in body if ch.isupper() or ch.islower()]
    if len(cased) < SHOUTING_LETTERS:
        return False
    return sum(ch.isupper() for ch in cased) >= SHOUTING_SHARE * len(cased)


def text_flags(body: str, locales: Iterable[str]) -> tuple[Flag, ...]:
    """The flags of a proposal's own words (its prefix taken off), for a consultation in
    `locales`, in Flag order."""
    found = set()
    if other_language(body, locales) is not None:
        found.add(Flag.OTHER_LANGUAGE)
    if _EMAIL.search(body):
        found.add(Flag.EMAIL)
    if _LINK.search(_EMAIL.sub(" ", body)):
        found.add(Flag.LINK)
    if has_phone(body):
        found.add(Flag.PHONE)
    if is_shouting(body):
        found.add(Flag.SHOUTING)
    if _REPEATED.search(body):
        found.add(Flag.REPEATED_CHARACTERS)
    return tuple(flag for flag in Flag if flag in found)


def flags_of(proposal: Proposal) -> tuple[Flag, ...]:
    """The flags stored on `proposal`, in Flag order (values this version does not know are
    left out)."""
    stored = set(proposal.flags.split())
    return tuple(flag for flag in Flag if flag in stored)


def _add_flags(proposal: Proposal, flags: Iterable[Flag]) -> None:
    values = set(proposal.flags.split()) | {str(flag) for flag in flags}
    proposal.flags = " ".join(sorted(values))


def flagged() -> Any:
    """SQL condition: the proposal has at least one flag."""
    return col(Proposal.flags) != ""


def has_flag(flag: Flag) -> Any:
    """SQL condition: the proposal has `flag` (on both databases)."""
    return (literal(" ") + col(Proposal.flags) + literal(" ")).like(f"% {flag} %")


def body_of(text: str, prefixes: Iterable[str]) -> str:
    """What the participant wrote: the text without the consultation's prefix ("We should")."""
    for prefix in sorted(prefixes, key=len, reverse=True):
        if prefix and text.casefold().startswith(prefix.casefold()):
            return text[len(prefix) :].strip()
    return text


def text_key(body: str) -> str | None:
    """Equal for copies of one text (case, accents, punctuation and spacing aside); None for a
    text with no word."""
    decomposed = unicodedata.normalize("NFKD", body.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = re.findall(r"[^\W_]+", bare)
    if not words:
        return None
    return hashlib.sha256(" ".join(words).encode()).hexdigest()


def _prefixes(consultation: Consultation) -> set[str]:
    prefixes = set(settings_of(consultation).prefix.values())
    prefixes.update(Translator(locale)("proposal.prefix") for locale in consultation.locales)
    return prefixes


async def _copies(session: AsyncSession, proposal: Proposal) -> list[tuple[int, str]]:
    """(id, flags) of the consultation's proposals of the same text by other participants."""
    assert proposal.text_key is not None
    if session.get_bind().dialect.name == "postgresql":
        # Two copies submitted at the same moment would not see each other's uncommitted
        # rows: the second waits for the first here, then sees it.
        digest = hashlib.sha256(f"{proposal.consultation_id}:{proposal.text_key}".encode())
        key = int.from_bytes(digest.digest()[:8], "big", signed=True)
        await session.exec(select(func.pg_advisory_xact_lock(key)))
    found = await session.exec(
        select(Proposal.id, Proposal.flags).where(
            Proposal.consultation_id == proposal.consultation_id,
            Proposal.text_key == proposal.text_key,
            Proposal.id != proposal.id,
            col(Proposal.author_id).is_distinct_from(proposal.author_id),
        )
    )
    return _rows(found)


def _rows(found: Iterable[tuple[int | None, str]]) -> list[tuple[int, str]]:
    return [(i, flags) for i, flags in found if i is not None]


def _recent(proposal: Proposal, since: datetime, *columns: Any) -> Any:
    """`columns` of the consultation's proposals since `since`, each with its author's
    participation (for the recruitment source)."""
    return (
        select(*columns)
        .select_from(Proposal)
        .outerjoin(
            Participation,
            (col(Participation.participant_id) == col(Proposal.author_id))
            & (col(Participation.consultation_id) == col(Proposal.consultation_id)),
        )
        .where(
            Proposal.consultation_id == proposal.consultation_id,
            col(Proposal.created_at) >= since,
        )
    )


async def _bursts(
    session: AsyncSession, proposal: Proposal, since: datetime, settings: FlagSettings
) -> list[tuple[Flag, list[tuple[int, str]]]]:
    """For each burst flag, the proposals since `since` to flag (by the author, by
    participants of the author's recruitment source) when they are as many as the setting
    says. The database counts both in one query; a long burst is not read, only its
    proposals that lack the flag."""
    source = (
        select(Participation.source)
        .where(
            Participation.participant_id == proposal.author_id,
            Participation.consultation_id == proposal.consultation_id,
        )
        .scalar_subquery()
    )
    matches = (
        (Flag.BURST_AUTHOR, col(Proposal.author_id) == proposal.author_id, settings.author),
        (Flag.BURST_SOURCE, col(Participation.source) == source, settings.source),
    )
    counts = (
        await session.exec(
            _recent(proposal, since, *(func.count(case((match, 1))) for _, match, _ in matches))
        )
    ).one()
    found = []
    for (flag, match, threshold), count in zip(matches, counts, strict=True):
        if count >= threshold:
            rows = await session.exec(
                _recent(proposal, since, Proposal.id, Proposal.flags).where(match, ~has_flag(flag))
            )
            found.append((flag, _rows(rows)))
    return found


async def flag_text(session: AsyncSession, proposal: Proposal) -> None:
    """Set the flags of a participant's new proposal's own words, and its text key, before
    it is stored (no statement of its own)."""
    consultation = await session.get(Consultation, proposal.consultation_id)
    assert consultation is not None
    body = body_of(proposal.text, _prefixes(consultation))
    proposal.flags = ""
    _add_flags(proposal, text_flags(body, consultation.locales))
    proposal.text_key = text_key(body)


async def flag_submission(session: AsyncSession, proposal: Proposal, now: datetime) -> None:
    """Flag a participant's proposal just stored (after `flag_text`) as a copy or part of a
    burst, and the earlier proposals it makes so, in the caller's transaction."""
    assert proposal.id is not None
    consultation = await session.get(Consultation, proposal.consultation_id)
    assert consultation is not None
    settings = settings_of(consultation).flags
    found: list[tuple[Flag, list[tuple[int, str]]]] = []
    if proposal.text_key is not None:
        copies = await _copies(session, proposal)
        found.append((Flag.SAME_TEXT, [(proposal.id, proposal.flags), *copies] if copies else []))
    if proposal.author_id is not None:
        since = now - timedelta(minutes=settings.minutes)
        found += await _bursts(session, proposal, since, settings)
    flags: dict[int, set[Flag]] = {}
    for flag, rows in found:
        for proposal_id, stored in rows:
            # A row flagged already is left alone: a burst of n proposals touches each once.
            if flag not in stored.split():
                flags.setdefault(proposal_id, set()).add(flag)
    if proposal.id in flags:
        _add_flags(proposal, flags.pop(proposal.id))
        session.add(proposal)
    if flags:
        # Earlier proposals' rows, locked in one order (two submissions flagging the same
        # rows never wait on each other in a cycle) and read afresh, so that a flag another
        # transaction added meanwhile is kept.
        earlier = await session.exec(
            select(Proposal)
            .where(col(Proposal.id).in_(sorted(flags)))
            .order_by(col(Proposal.id))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        for other in earlier:
            assert other.id is not None
            _add_flags(other, flags[other.id])
            session.add(other)
    await session.flush()
