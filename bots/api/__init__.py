"""The organiser API (`/api/...`): bearer tokens, a response model for every route, refusals
as JSON saying what to fix. `consult serve` mounts it with `install_api`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import Depends, FastAPI

from bots.api.audit import audit_router
from bots.api.broadcasts import broadcasts_router
from bots.api.deps import ApiProblem, install_problems
from bots.api.moderation import moderation_router
from bots.api.results import stored_results_router
from bots.nul import refuse_nul
from bots.settings import Settings
from core.flow import utc_now


def install_api(
    app: FastAPI, settings: Settings, *, clock: Callable[[], datetime] = utc_now
) -> None:
    """Mount the moderation and audit routes, and what every API route relies on: the
    settings (the legacy organiser token), the clock, the JSON refusals, and no NUL in what
    a route reads."""
    app.state.api_settings = settings
    app.state.api_clock = clock
    install_problems(app)
    no_nul = Depends(
        refuse_nul(lambda slug: ApiProblem(404, "api.unknown_consultation", slug=slug))
    )
    app.include_router(moderation_router(), dependencies=[no_nul])
    app.include_router(audit_router(), dependencies=[no_nul])
    app.include_router(broadcasts_router(), dependencies=[no_nul])
    app.include_router(stored_results_router(settings.results_every_minutes), dependencies=[no_nul])
