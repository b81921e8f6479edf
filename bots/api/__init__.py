"""The organiser API (`/api/...`): bearer tokens, a response model for every route, refusals
as JSON saying what to fix. `consult serve` mounts it with `install_api`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from bots.api.audit import audit_router
from bots.api.deps import install_problems
from bots.api.moderation import moderation_router
from bots.settings import Settings
from core.flow import utc_now


def install_api(
    app: FastAPI, settings: Settings, *, clock: Callable[[], datetime] = utc_now
) -> None:
    """Mount the moderation and audit routes, and what every API route relies on: the
    settings (the legacy organiser token), the clock, and the JSON refusals."""
    app.state.api_settings = settings
    app.state.api_clock = clock
    install_problems(app)
    app.include_router(moderation_router())
    app.include_router(audit_router())
