"""Signing in with a one-time link, signing out, and the language switch.

The link's GET only shows a button: mail scanners fetch links, and a code they fetched would
be spent. The POST redeems the code, rate-limited per client address.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from bots.console import csrf
from bots.console.deps import LANGUAGE_COOKIE, ConsoleDep, CsrfChecked, SessionDep, page_for
from bots.console.pages import NOTICES, base_path, set_cookie
from bots.console.sessions import COOKIE, SignedIn
from core.i18n import available_locales
from core.moderation import Actor, Source, record_action
from core.organisers import SignInRefused, end_sessions, redeem_sign_in_code, sign_in_allowed

router = APIRouter()

CODE_MAX_LENGTH = 200
YEAR_SECONDS = 365 * 24 * 3600


@router.get("/sign-in")
async def sign_in_page(
    request: Request,
    console: ConsoleDep,
    code: Annotated[str, Query(max_length=CODE_MAX_LENGTH)] = "",
    notice: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    page = page_for(request, console)
    message = page.t(NOTICES[notice]) if notice in NOTICES else None
    return page.render("sign_in.html", code=code, notice=message, error=None)


@router.post("/sign-in", dependencies=[CsrfChecked])
async def sign_in(
    request: Request,
    console: ConsoleDep,
    session: SessionDep,
    code: Annotated[str, Form(max_length=CODE_MAX_LENGTH)] = "",
) -> Response:
    """Redeem the code and set the session cookie; a refusal says why (400, 429)."""
    page = page_for(request, console)
    now = console.clock()
    client = request.client.host if request.client else "unknown"
    # Its own transaction: a refused code must still count as an attempt.
    async with session.begin():
        allowed = await sign_in_allowed(session, console.attempts_key(client), now=now)
    if not allowed:
        error = page.t("console.sign_in.too_many")
        return page.render("sign_in.html", status=429, code="", notice=None, error=error)
    try:
        async with session.begin():
            organiser = await redeem_sign_in_code(session, code.strip(), now=now)
            actor = Actor(organiser.email, Source.CONSOLE)
            await record_action(session, actor, "organiser.sign_in", "console", None, now)
    except SignInRefused as refused:
        error = page.t(refused.msgid)
        return page.render("sign_in.html", status=400, code="", notice=None, error=error)
    base = base_path(request)
    response = RedirectResponse(f"{base}/", status_code=303)
    cookie = console.sessions.dumps(SignedIn(organiser.id, organiser.session_version, now))
    lifetime = int(console.session_lifetime.total_seconds())
    set_cookie(response, COOKIE, cookie, base, page.secure, lifetime)
    return response


@router.post("/sign-out", dependencies=[CsrfChecked])
async def sign_out(request: Request, console: ConsoleDep, session: SessionDep) -> Response:
    """End the session on the server, not only in this browser: a copy of the cookie (another
    device, a stolen one) stops working too. Every session of the organiser ends with it (the
    session version they all carry goes up)."""
    signed_in = console.sessions.loads(request.cookies.get(COOKIE))
    if signed_in is not None:
        async with session.begin():
            await end_sessions(session, signed_in.organiser_id, signed_in.session_version)
    base = base_path(request)
    response = RedirectResponse(f"{base}/sign-in?notice=signed-out", status_code=303)
    response.delete_cookie(COOKIE, path=base or "/")
    response.delete_cookie(csrf.COOKIE, path=base or "/")
    return response


@router.get("/language")
async def switch_language(
    request: Request,
    to: Annotated[str, Query(max_length=16)],
    back: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    """Remember the chosen language and go back to the page it was chosen on (in the console)."""
    base = base_path(request)
    inside = back.startswith(f"{base}/") and not back.startswith("//") and "\\" not in back
    response = RedirectResponse(back if inside else f"{base}/", status_code=303)
    if to in available_locales():
        secure = request.url.scheme == "https"
        set_cookie(response, LANGUAGE_COOKIE, to, base, secure, YEAR_SECONDS)
    return response
