"""Organiser accounts: who may read, moderate or administer which consultation, and how they
prove who they are (one-time sign-in codes for the console, API tokens for scripts).

A secret is shown once and never stored: it is `<selector>.<verifier>`, the selector finds the
row and only a SHA-256 of the verifier is kept, compared in constant time. The verifier carries
256 random bits, so a fast hash is as safe as a slow one here and costs nothing per request.
An organiser's e-mail is not participant data: it is what the audit log names them by.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import String, bindparam, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import (
    ChatLinkCode,
    Consultation,
    Organiser,
    OrganiserGrant,
    OrganiserSecret,
    SignInAttempt,
    UTCDateTime,
)

SIGN_IN_CODE_LIFETIME = timedelta(hours=24)
SIGN_IN_ATTEMPTS = 10  # per key and window, before sign_in_allowed says no
SIGN_IN_WINDOW = timedelta(minutes=15)
EMAIL_MAX_LENGTH = 255
TOKEN_PREFIX = "consult_"  # recognisable in a leaked script or a secret scanner
# Something at both sides of an @, a dot in the domain, no spaces: the rest is the mail
# server's business, and a typo shows when the link never arrives.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


class Role(StrEnum):
    ANALYST = "analyst"
    MODERATOR = "moderator"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"
    MODERATE = "moderate"
    ADMINISTER = "administer"


PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ANALYST: frozenset({Permission.READ}),
    Role.MODERATOR: frozenset({Permission.READ, Permission.MODERATE}),
    Role.ADMIN: frozenset(Permission),
}


class _Kind(StrEnum):
    TOKEN = "token"
    SIGN_IN = "sign-in"


@dataclass(frozen=True)
class Grant:
    """A role on one consultation, or on every consultation (`consultation_id` None)."""

    role: Role
    consultation_id: int | None


@dataclass(frozen=True)
class OrganiserView:
    """An organiser as the entrypoints see them: no secret, their grants, the session version
    a console session must carry to stay signed in."""

    id: int
    email: str
    grants: tuple[Grant, ...]
    session_version: int

    def can(self, permission: Permission, consultation_id: int) -> bool:
        """Whether a grant on this consultation (or on all) gives `permission`."""
        return any(
            permission in PERMISSIONS[grant.role]
            and grant.consultation_id in (None, consultation_id)
            for grant in self.grants
        )

    def readable(self) -> frozenset[int] | None:
        """The consultations this organiser may read; None for every one."""
        if any(grant.consultation_id is None for grant in self.grants):
            return None
        return frozenset(g.consultation_id for g in self.grants if g.consultation_id is not None)


class OrganiserError(Exception):
    """An organiser request that cannot be done as asked; `msgid` says why to a person."""

    msgid = "organiser.error"


class BadEmail(OrganiserError):
    msgid = "organiser.bad_email"


class UnknownConsultation(OrganiserError):
    msgid = "organiser.unknown_consultation"


class UnknownOrganiser(OrganiserError):
    """No organiser has this e-mail, or they were revoked (added again, they are back)."""

    msgid = "organiser.unknown"


class SignInRefused(Exception):
    """A sign-in code that is unknown, used already or expired; `msgid` says which."""

    def __init__(self, msgid: str) -> None:
        super().__init__(msgid)
        self.msgid = msgid


UNKNOWN_CODE = "organiser.sign_in.unknown"
USED_CODE = "organiser.sign_in.used"
EXPIRED_CODE = "organiser.sign_in.expired"


def normalised_email(email: str) -> str:
    """`email` trimmed and lower-cased; raises BadEmail if it does not look like an address."""
    email = email.strip().lower()
    if len(email) > EMAIL_MAX_LENGTH or not _EMAIL.fullmatch(email):
        raise BadEmail(email)
    return email


async def add_organiser(
    session: AsyncSession,
    email: str,
    role: Role,
    consultation_slug: str | None,
    *,
    now: datetime,
) -> tuple[OrganiserView, str]:
    """Give `email` the `role` on a consultation (every one without a slug), and a one-time
    sign-in code.

    An existing organiser gets the grant added (a grant on the same consultation takes the new
    role); a revoked one is back. Raises BadEmail, UnknownConsultation.
    """
    email = normalised_email(email)
    consultation_id = None
    if consultation_slug is not None:
        found = await session.exec(
            select(Consultation.id).where(Consultation.slug == consultation_slug)
        )
        consultation_id = found.first()
        if consultation_id is None:
            raise UnknownConsultation(consultation_slug)
    organiser = (await session.exec(select(Organiser).where(Organiser.email == email))).first()
    if organiser is None:
        organiser = Organiser(email=email, created_at=now)
        session.add(organiser)
        await session.flush()
    organiser.revoked_at = None
    organiser_id = _id(organiser)
    same = (
        await session.exec(
            select(OrganiserGrant).where(
                OrganiserGrant.organiser_id == organiser_id,
                col(OrganiserGrant.consultation_id).is_(None)
                if consultation_id is None
                else OrganiserGrant.consultation_id == consultation_id,
            )
        )
    ).first()
    if same is None:
        session.add(
            OrganiserGrant(
                organiser_id=organiser_id,
                role=role.value,
                consultation_id=consultation_id,
                created_at=now,
            )
        )
    else:
        same.role = role.value
    code = await _new_secret(session, organiser_id, _Kind.SIGN_IN, now)
    await session.flush()
    return await _view(session, organiser), code


async def sign_in_code(session: AsyncSession, email: str, *, now: datetime) -> str:
    """A new one-time sign-in code for `email`, valid 24 hours. Raises UnknownOrganiser."""
    organiser = await _active(session, email)
    return await _new_secret(session, _id(organiser), _Kind.SIGN_IN, now)


async def redeem_sign_in_code(session: AsyncSession, code: str, *, now: datetime) -> OrganiserView:
    """The organiser a sign-in code was made for; the code can never be used again.

    Single use even when two requests race on two workers: the code is spent by one
    conditional UPDATE, which only one transaction can make. Raises SignInRefused.
    """
    row = await _secret_row(session, code, _Kind.SIGN_IN)
    if row is None:
        raise SignInRefused(UNKNOWN_CODE)
    spent = await session.exec(
        update(OrganiserSecret)
        .where(
            col(OrganiserSecret.id) == row.id,
            col(OrganiserSecret.used_at).is_(None),
            col(OrganiserSecret.revoked_at).is_(None),
            col(OrganiserSecret.expires_at) > now,
        )
        .values(used_at=now)
    )
    if spent.rowcount != 1:
        await session.refresh(row)
        if row.revoked_at is not None:  # its organiser was revoked since: it stays dead
            raise SignInRefused(UNKNOWN_CODE)
        raise SignInRefused(USED_CODE if row.used_at is not None else EXPIRED_CODE)
    view = await organiser_by_id(session, row.organiser_id)
    if view is None:  # revoked since the code was made
        raise SignInRefused(UNKNOWN_CODE)
    return view


async def organiser_by_id(session: AsyncSession, organiser_id: int) -> OrganiserView | None:
    """The organiser with this id; None if there is none or they were revoked."""
    organiser = await session.get(Organiser, organiser_id)
    if organiser is None or organiser.revoked_at is not None:
        return None
    return await _view(session, organiser)


async def organiser_by_email(session: AsyncSession, email: str) -> OrganiserView | None:
    """The organiser with this e-mail (any case); None if there is none or they were revoked."""
    try:
        return await _view(session, await _active(session, email))
    except OrganiserError:
        return None


async def organisers(session: AsyncSession) -> list[OrganiserView]:
    """Every organiser not revoked, by e-mail."""
    found = await session.exec(
        select(Organiser).where(col(Organiser.revoked_at).is_(None)).order_by(col(Organiser.email))
    )
    return [await _view(session, organiser) for organiser in found.all()]


async def issue_token(session: AsyncSession, email: str, *, now: datetime) -> str:
    """A new API token for `email`: to show once, it is stored hashed. Raises UnknownOrganiser."""
    organiser = await _active(session, email)
    return TOKEN_PREFIX + await _new_secret(session, _id(organiser), _Kind.TOKEN, now)


async def organiser_for_token(
    session: AsyncSession, token: str, *, now: datetime
) -> OrganiserView | None:
    """The organiser an API token belongs to; None for an unknown or revoked token."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = await _secret_row(session, token.removeprefix(TOKEN_PREFIX), _Kind.TOKEN)
    if row is None or row.revoked_at is not None:
        return None
    return await organiser_by_id(session, row.organiser_id)


async def revoke(session: AsyncSession, email: str, *, now: datetime) -> int:
    """Cut `email` off: its tokens, sign-in codes and chat link codes stop working (for good:
    adding them again does not revive a code that may have leaked), its console sessions are
    signed out (session_version goes up), and it can do nothing until added again.

    Returns how many API tokens were revoked. Raises UnknownOrganiser.
    """
    organiser = await _active(session, email)
    organiser_id = _id(organiser)
    organiser.revoked_at = now
    organiser.session_version += 1
    session.add(organiser)
    tokens = await session.exec(
        update(OrganiserSecret)
        .where(
            col(OrganiserSecret.organiser_id) == organiser_id,
            col(OrganiserSecret.kind) == _Kind.TOKEN.value,
            col(OrganiserSecret.revoked_at).is_(None),
        )
        .values(revoked_at=now)
    )
    await session.exec(
        update(OrganiserSecret)
        .where(
            col(OrganiserSecret.organiser_id) == organiser_id,
            col(OrganiserSecret.kind) == _Kind.SIGN_IN.value,
            col(OrganiserSecret.revoked_at).is_(None),
        )
        .values(revoked_at=now)
    )
    # A chat link code not spent yet is deleted: sent in a chat afterwards, it is unknown.
    await session.exec(
        delete(ChatLinkCode).where(
            col(ChatLinkCode.organiser_id) == organiser_id, col(ChatLinkCode.used_at).is_(None)
        )
    )
    await session.flush()
    return int(tokens.rowcount)


async def end_sessions(session: AsyncSession, organiser_id: int, session_version: int) -> bool:
    """Sign an organiser out of every console session (when they sign out: a copied session
    cookie must not stay valid): their session version goes up, if it is still
    `session_version` (a session already ended ends nothing more). Whether it went up."""
    ended = await session.exec(
        update(Organiser)
        .where(
            col(Organiser.id) == organiser_id,
            col(Organiser.session_version) == session_version,
        )
        .values(session_version=col(Organiser.session_version) + 1)
    )
    return bool(ended.rowcount == 1)


# One statement counts an attempt, whether or not the key has a row in this window yet.
_COUNT_ATTEMPT = {
    dialect: insert_for(SignInAttempt)
    .values(
        key_hash=bindparam("b_key", type_=String()),
        window_start=bindparam("b_start", type_=UTCDateTime()),
        count=1,
    )
    .on_conflict_do_update(
        index_elements=["key_hash", "window_start"],
        set_={"count": col(SignInAttempt.count) + 1},
    )
    .returning(col(SignInAttempt.count))
    for dialect, insert_for in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}


async def sign_in_allowed(
    session: AsyncSession,
    key: str,
    *,
    now: datetime,
    attempts: int = SIGN_IN_ATTEMPTS,
    window: timedelta = SIGN_IN_WINDOW,
) -> bool:
    """Count a sign-in attempt by `key` (an address, an e-mail); False once it made more than
    `attempts` in the current `window`.

    Windows are fixed (aligned on the epoch), counted by one atomic upsert, so workers sharing
    the database share the limit. Only a SHA-256 of the key is stored.
    """
    key_hash = hashlib.sha256(f"sign-in\x1f{key}".encode()).hexdigest()
    seconds = int(window.total_seconds())
    start = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=now.tzinfo)
    await session.exec(delete(SignInAttempt).where(col(SignInAttempt.window_start) < start))
    statement = _COUNT_ATTEMPT[session.get_bind().dialect.name]
    counted = await session.exec(statement, params={"b_key": key_hash, "b_start": start})
    return int(counted.scalar_one()) <= attempts


async def _active(session: AsyncSession, email: str) -> Organiser:
    """The organiser with `email`, not revoked; raises UnknownOrganiser (or BadEmail)."""
    email = normalised_email(email)
    organiser = (await session.exec(select(Organiser).where(Organiser.email == email))).first()
    if organiser is None or organiser.revoked_at is not None:
        raise UnknownOrganiser(email)
    return organiser


async def _new_secret(session: AsyncSession, organiser_id: int, kind: _Kind, now: datetime) -> str:
    selector = secrets.token_hex(8)
    verifier = secrets.token_urlsafe(32)
    session.add(
        OrganiserSecret(
            organiser_id=organiser_id,
            kind=kind.value,
            selector=selector,
            secret_hash=_digest(verifier),
            created_at=now,
            expires_at=now + SIGN_IN_CODE_LIFETIME if kind is _Kind.SIGN_IN else None,
        )
    )
    await session.flush()
    return f"{selector}.{verifier}"


async def _secret_row(session: AsyncSession, secret: str, kind: _Kind) -> OrganiserSecret | None:
    """The row of `secret` if its verifier matches (compared in constant time), else None."""
    selector, dot, verifier = secret.partition(".")
    if not dot or not selector or len(selector) > 32:
        return None
    row = (
        await session.exec(
            select(OrganiserSecret).where(
                OrganiserSecret.selector == selector, OrganiserSecret.kind == kind.value
            )
        )
    ).first()
    if row is None or not hmac.compare_digest(row.secret_hash, _digest(verifier)):
        return None
    return row


def _digest(verifier: str) -> str:
    return hashlib.sha256(verifier.encode()).hexdigest()


async def _view(session: AsyncSession, organiser: Organiser) -> OrganiserView:
    organiser_id = _id(organiser)
    grants = await session.exec(
        select(OrganiserGrant)
        .where(OrganiserGrant.organiser_id == organiser_id)
        .order_by(col(OrganiserGrant.id))
    )
    return OrganiserView(
        id=organiser_id,
        email=organiser.email,
        grants=tuple(Grant(Role(g.role), g.consultation_id) for g in grants.all()),
        session_version=organiser.session_version,
    )


def _id(organiser: Organiser) -> int:
    assert organiser.id is not None  # flushed
    return organiser.id
