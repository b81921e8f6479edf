"""What every organiser API route depends on: the runtime, the organiser a bearer token names,
the consultation a slug names, and refusals as JSON saying what to fix.

A refusal is `{"detail": <what to fix, in the Accept-Language>, "code": <message id>, ...}`,
with whatever else a script can act on (who holds a lock, the reasons allowed).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bots.bootstrap import Runtime
from bots.settings import Settings
from core.definitions import consultation_by_slug
from core.i18n import FALLBACK, Translator, available_locales, negotiate
from core.models import Consultation
from core.organisers import Grant, OrganiserView, Permission, Role, organiser_for_token

# The legacy CONSULT_ORGANISER_TOKEN: an administrator of every consultation.
LEGACY_ADMIN = OrganiserView(0, "token", (Grant(Role.ADMIN, None),), 0)


class ApiProblem(Exception):
    """A request the API refuses: an HTTP status, a message id and its values, and `extra`
    fields for scripts."""

    def __init__(
        self, http_status: int, msgid: str, extra: dict[str, Any] | None = None, /, **values: Any
    ) -> None:
        super().__init__(msgid)
        self.status = http_status
        self.msgid = msgid
        self.values = values
        self.extra = extra or {}


def translator(request: Request) -> Translator:
    """The organiser's language, from Accept-Language (English otherwise)."""
    header = request.headers.get("accept-language", "")
    for part in header.split(",")[:10]:
        chosen = negotiate(part.split(";")[0].strip(), available_locales())
        if chosen:
            return Translator(chosen)
    return Translator(FALLBACK)


async def _problem_response(request: Request, problem: Exception) -> JSONResponse:
    assert isinstance(problem, ApiProblem)
    t = translator(request)
    body = {"detail": t(problem.msgid, **problem.values), "code": problem.msgid, **problem.extra}
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return JSONResponse(body, problem.status, headers=headers)


def install_problems(app: FastAPI) -> None:
    """Answer every ApiProblem raised by a route as its JSON refusal."""
    app.add_exception_handler(ApiProblem, _problem_response)


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
TranslatorDep = Annotated[Translator, Depends(translator)]
_bearer = HTTPBearer(auto_error=False)  # we answer 401 ourselves, saying what to send


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.api_settings  # set by bots.api.install_api
    return settings


async def current_organiser(
    rt: RuntimeDep,
    settings: Annotated[Settings, Depends(_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    request: Request,
) -> OrganiserView:
    """The organiser named by `Authorization: Bearer <token>`: an API token of theirs
    (`consult organiser token`), or the legacy CONSULT_ORGANISER_TOKEN (an administrator).
    401 without a token or with one that is unknown or revoked."""
    if credentials is None:
        raise ApiProblem(401, "api.no_token")
    given = credentials.credentials
    legacy = settings.organiser_token
    if legacy and hmac.compare_digest(given.encode(), legacy.get_secret_value().encode()):
        return LEGACY_ADMIN
    async with rt.sessions() as session:
        organiser = await organiser_for_token(session, given, now=_now(request))
    if organiser is None:
        raise ApiProblem(401, "api.bad_token")
    return organiser


OrganiserDep = Annotated[OrganiserView, Depends(current_organiser)]


def _now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.api_clock  # bots.api.install_api
    return clock()


NowDep = Annotated[datetime, Depends(_now)]


def require(organiser: OrganiserView, permission: Permission, consultation_id: int) -> None:
    """403 unless the organiser's grants give `permission` on the consultation."""
    if not organiser.can(permission, consultation_id):
        raise ApiProblem(403, f"api.forbidden.{permission.value}", {"permission": permission.value})


async def consultation_for(
    rt: Runtime, organiser: OrganiserView, slug: str, permission: Permission
) -> Consultation:
    """The consultation `slug` names, if the organiser has `permission` on it (404, 403)."""
    async with rt.sessions() as session:
        consultation = await consultation_by_slug(session, slug)
    if consultation is None or consultation.id is None:
        raise ApiProblem(404, "api.unknown_consultation", slug=slug)
    require(organiser, permission, consultation.id)
    return consultation
