"""The console's dependencies, as `Annotated` types a route names in its signature: the
database session, the organiser signed in, the consultation they may read (or moderate), the
page they are shown, and the CSRF check every POST runs first."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Form, Header, Request
from fastapi.templating import Jinja2Templates
from pydantic import Field
from sqlmodel.ext.asyncio.session import AsyncSession

from bots.bootstrap import Runtime
from bots.console import csrf
from bots.console.csrf import CsrfSigner
from bots.console.pages import Page, PageError, SignInNeeded
from bots.console.sessions import COOKIE, SessionSigner
from bots.settings import Settings
from core.definitions import consultation_by_slug
from core.i18n import FALLBACK, Translator, available_locales, negotiate
from core.ids import ID_MAX
from core.models import Consultation
from core.organisers import OrganiserView, Permission, organiser_by_id

LANGUAGE_COOKIE = "consult_lang"
# An id among a form's repeated fields (ticked proposals): one beyond any id is a 422.
FormId = Annotated[int, Field(ge=1, le=ID_MAX)]


@dataclass
class Console:
    """What the console's routes share: settings, the runtime, the clock, signers, templates."""

    settings: Settings
    runtime: Callable[[], Runtime]
    clock: Callable[[], datetime]
    templates: Jinja2Templates
    session_lifetime: timedelta

    # The signers read the server's secret on first use, not when the app is built: the
    # secret may be a file the data directory gets on first run.
    @cached_property
    def sessions(self) -> SessionSigner:
        return SessionSigner(self.settings.resolved_secret())

    @cached_property
    def csrf(self) -> CsrfSigner:
        return CsrfSigner(self.settings.resolved_secret())

    def attempts_key(self, client: str) -> str:
        """What sign-in attempts from `client` (an address) are counted by: keyed with the
        server's secret, so the stored hash cannot be reversed by trying every address."""
        secret = self.settings.resolved_secret()
        keyed = hmac.new(secret, f"console:{client}".encode(), hashlib.sha256).hexdigest()
        return f"console:{keyed}"


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


ConsoleDep = Annotated[Console, Depends(_console)]


async def _session(console: ConsoleDep) -> AsyncIterator[AsyncSession]:
    """A database session for the request; each route keeps its transactions short (on SQLite
    a transaction holds the write lock)."""
    async with console.runtime().sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(_session)]


def accepted_languages(header: str | None) -> list[str]:
    """An Accept-Language header's languages, most wanted first ("fr-CH, fr;q=0.9, en;q=0.8")."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "")[:500].split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and weight > 0:
            ranked.append((-weight, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def language_of(request: Request) -> str:
    """The organiser's choice (the language switch's cookie), else their browser's, else English."""
    offered = available_locales()
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in offered:
        return str(chosen)
    for tag in accepted_languages(request.headers.get("accept-language")):
        found = negotiate(tag, offered)
        if found is not None:
            return found
    return FALLBACK


def _translator(request: Request) -> Translator:
    return Translator(language_of(request))


TranslatorDep = Annotated[Translator, Depends(_translator)]


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def page_for(request: Request, console: Console, organiser: str | None = None) -> Page:
    """A page for this request (also used by the error handlers, outside injection)."""
    pair = console.csrf.pair(request.cookies.get(csrf.COOKIE))
    translator = Translator(language_of(request))
    return Page(request, console.templates, translator, pair, is_https(request), organiser)


async def check_csrf(
    request: Request,
    console: ConsoleDep,
    form_token: Annotated[str | None, Form(alias=csrf.FIELD)] = None,
    header_token: Annotated[str | None, Header(alias=csrf.HEADER)] = None,
) -> None:
    """Refuse (403, before anything else runs) a POST whose token is not this browser's."""
    if not console.csrf.valid(request.cookies.get(csrf.COOKIE), form_token or header_token):
        raise PageError(403, "console.error.csrf")


CsrfChecked = Depends(check_csrf)


async def _organiser(request: Request, console: ConsoleDep, session: SessionDep) -> OrganiserView:
    """The organiser whose session cookie this is; SignInNeeded if it is missing, forged,
    expired, or from before they were signed out everywhere (revoked)."""
    signed_in = console.sessions.loads(request.cookies.get(COOKIE))
    if signed_in is None:
        raise SignInNeeded()
    if signed_in.expired(console.clock(), console.session_lifetime):
        raise SignInNeeded("expired")
    async with session.begin():
        organiser = await organiser_by_id(session, signed_in.organiser_id)
    if organiser is None or organiser.session_version != signed_in.session_version:
        raise SignInNeeded("revoked")
    return organiser


OrganiserDep = Annotated[OrganiserView, Depends(_organiser)]


def _page(request: Request, console: ConsoleDep, organiser: OrganiserDep) -> Page:
    return page_for(request, console, organiser.email)


PageDep = Annotated[Page, Depends(_page)]


async def _consultation(slug: str, organiser: OrganiserDep, session: SessionDep) -> Consultation:
    """The consultation named in the path, if this organiser may read it (404, 403)."""
    async with session.begin():
        consultation = await consultation_by_slug(session, slug[:64])
        if consultation is not None:
            # Kept apart from the session: a refused decision rolls the session back, which
            # would expire it (and a page would then read its fields from the database).
            session.expunge(consultation)
    if consultation is None or consultation.id is None:
        raise PageError(404, "console.error.unknown_consultation", slug=slug[:64])
    if not organiser.can(Permission.READ, consultation.id):
        raise PageError(403, "console.error.not_yours", slug=consultation.slug)
    return consultation


ConsultationDep = Annotated[Consultation, Depends(_consultation)]


def _moderated(consultation: ConsultationDep, organiser: OrganiserDep) -> Consultation:
    """The consultation, if this organiser may also moderate it (403 for an analyst)."""
    assert consultation.id is not None
    if not organiser.can(Permission.MODERATE, consultation.id):
        raise PageError(403, "console.error.cannot_moderate", slug=consultation.slug)
    return consultation


ModeratedDep = Annotated[Consultation, Depends(_moderated)]
