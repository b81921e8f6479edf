"""Rendering a console page: the template, the organiser's language, the CSRF token, and the
refusals every route may raise (a page saying what happened, with its HTTP status)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from babel.dates import format_datetime, format_time, format_timedelta
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bots.console import csrf
from bots.console.csrf import CsrfPair
from core.i18n import Translator, available_locales

TEMPLATES = Path(__file__).resolve().parent / "templates"


class PageError(Exception):
    """A request the console refuses: HTTP `status` and the message id saying why."""

    def __init__(self, status: int, msgid: str, **values: Any) -> None:
        super().__init__(msgid)
        self.status = status
        self.msgid = msgid
        self.values = values


class SignInNeeded(Exception):
    """No valid session: back to the sign-in page, saying why (`notice`: a key of NOTICES)."""

    def __init__(self, notice: str | None = None) -> None:
        super().__init__(notice or "sign-in needed")
        self.notice = notice


def templates() -> Jinja2Templates:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every value is escaped: proposals are what participants typed
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=environment)


def base_path(request: Request) -> str:
    """Where the console is mounted ("/console"), as the browser sees it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


@dataclass
class Page:
    """What every page needs: the request, the organiser's language, the CSRF pair."""

    request: Request
    renderer: Jinja2Templates
    t: Translator
    csrf: CsrfPair
    secure: bool
    organiser: str | None = None
    context: dict[str, Any] = field(default_factory=dict)

    def when(self, moment: datetime) -> str:
        return format_datetime(moment, "short", tzinfo=moment.tzinfo, locale=self.t.locale)

    def hour(self, moment: datetime) -> str:
        return format_time(moment, "short", tzinfo=moment.tzinfo, locale=self.t.locale)

    def age(self, elapsed: timedelta) -> str:
        return format_timedelta(elapsed, locale=self.t.locale)

    def render(self, name: str, *, status: int = 200, **values: Any) -> HTMLResponse:
        base = base_path(self.request)
        context: dict[str, Any] = {
            "t": self.t,
            "base": base,
            "lang": self.t.locale,
            "languages": available_locales(),
            "here": _here(self.request),
            "csrf_field": csrf.FIELD,
            "csrf_header": csrf.HEADER,
            "csrf_token": self.csrf.token,
            "organiser": self.organiser,
            "when": self.when,
            "age": self.age,
            "hour": self.hour,
            **self.context,
            **values,
        }
        response = self.renderer.TemplateResponse(self.request, name, context, status_code=status)
        if self.csrf.fresh:
            set_cookie(response, csrf.COOKIE, self.csrf.nonce, base, self.secure, None)
        return response


def _here(request: Request) -> str:
    """The page's address within the site, for the language switch to come back to (a
    POST's answer is not one to come back to: the console's first page instead)."""
    if request.method != "GET":
        return f"{base_path(request)}/"
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def set_cookie(
    response: Any, name: str, value: str, path: str, secure: bool, max_age: int | None
) -> None:
    """A console cookie: HttpOnly, SameSite=Lax, Secure over https, scoped to the console."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path or "/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )


# Why the sign-in page is shown again (`?notice=` of its address): nothing else is shown.
NOTICES = {
    "expired": "console.sign_in.expired",
    "revoked": "console.sign_in.revoked",
    "signed-out": "console.sign_in.signed_out",
}
