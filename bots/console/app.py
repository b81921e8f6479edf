"""The organisers' console: a FastAPI app that `consult serve` mounts at /console.

Server-rendered pages (Jinja2), htmx for the few partial updates, no build step; its static
files (htmx with its licence, a stylesheet, the keyboard shortcuts) ship in `static/`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from bots.bootstrap import Runtime
from bots.console.deps import Console, page_for
from bots.console.pages import PageError, SignInNeeded, base_path, templates
from bots.console.routes import (
    audit,
    broadcasts,
    bulk,
    consultations,
    dashboard,
    ideas,
    moderation,
    sign_in,
)
from bots.console.sessions import COOKIE
from bots.nul import refuse_nul
from bots.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
# Scripts and styles from the console's own files only; no frame may embed it; the address of
# a page (a sign-in link holds a code) is never sent to another site.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def console_app(
    settings: Settings,
    runtime: Callable[[], Runtime],
    *,
    clock: Callable[[], datetime],
) -> FastAPI:
    """The console; `runtime` gives the server's database once it has started."""
    no_nul = refuse_nul(
        lambda slug: PageError(404, "console.error.unknown_consultation", slug=slug[:64])
    )
    app = FastAPI(
        title="consult console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(no_nul)],  # every route: PostgreSQL refuses NUL in text
    )
    app.state.console = Console(
        settings=settings,
        runtime=runtime,
        clock=clock,
        templates=templates(),
        session_lifetime=timedelta(hours=settings.console_session_hours),
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for routes in (sign_in, consultations, dashboard, moderation, ideas, bulk, broadcasts, audit):
        app.include_router(routes.router)

    @app.middleware("http")
    async def _security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith(f"{base_path(request)}/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.add_exception_handler(PageError, _refused)
    app.add_exception_handler(SignInNeeded, _to_sign_in)
    app.add_exception_handler(RequestValidationError, _malformed)
    return app


async def _refused(request: Request, error: Exception) -> Response:
    assert isinstance(error, PageError)
    page = page_for(request, request.app.state.console)
    message = page.t(error.msgid, **error.values)
    return page.render("error.html", status=error.status, message=message)


async def _malformed(request: Request, error: Exception) -> Response:
    """A form FastAPI could not read (a field missing, too long, not a number): 422."""
    assert isinstance(error, RequestValidationError)
    page = page_for(request, request.app.state.console)
    fields = sorted({str(problem["loc"][-1]) for problem in error.errors() if problem["loc"]})
    message = page.t("console.error.malformed", fields=", ".join(fields) or "-")
    return page.render("error.html", status=422, message=message)


async def _to_sign_in(request: Request, error: Exception) -> Response:
    """Back to sign-in: a redirect for the browser, HX-Redirect for an htmx request."""
    assert isinstance(error, SignInNeeded)
    query = urlencode({"notice": error.notice}) if error.notice else ""
    target = f"{base_path(request)}/sign-in" + (f"?{query}" if query else "")
    if request.headers.get("HX-Request"):
        response: Response = Response(status_code=204, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    response.delete_cookie(COOKIE, path=base_path(request) or "/")
    return response
