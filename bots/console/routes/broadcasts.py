"""A consultation's broadcasts in the console: the list (state, progress), the compose page
(a text per locale, the button, the audience with its live count, when, a preview), and a
broadcast's page (progress and stats refreshed while it runs; pause, resume, cancel for
administrators), and "Send me a test" on the compose page. Each action is one
`core.broadcasts` call; pages show counts, never a recipient.

The live count and the preview are htmx fragments: the audience field asks for its count as
the organiser types (debounced), and a fault is shown under the field with its position.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from bots.broadcast_input import (
    Invalid,
    check_audience,
    check_message,
    compose,
    first_moment,
    preview_of,
)
from bots.broadcast_preview import telegram_stars
from bots.broadcast_test import check_locale, parse_to, send_test
from bots.console.deps import (
    ConsoleDep,
    ConsultationDep,
    CsrfChecked,
    OrganiserDep,
    PageDep,
    SessionDep,
)
from bots.console.pages import Page, PageError, base_path
from bots.scheduler import next_fire
from core.broadcasts.audience import audience_size
from core.broadcasts.control import BroadcastStateError, cancel, pause, resume
from core.broadcasts.planning import ScheduleError, create_broadcast
from core.broadcasts.stats import broadcast_stats, list_broadcasts
from core.definitions import settings_of
from core.ids import ID_MAX
from core.models import Broadcast, Consultation
from core.moderation import Actor, Source
from core.organisers import OrganiserView, Permission

router = APIRouter()

BroadcastId = Annotated[int, Path(ge=1, le=ID_MAX)]
FIELD_MAX = 5000  # beyond any text the core accepts: a longer field is not read further
WHENS = ("now", "at", "every")
# Messages that are settled (nothing more will happen to them) and those still to go.
SETTLED = ("sent", "failed", "blocked", "unknown", "cancelled")
PENDING = ("queued", "claimed", "waiting")


def _administered(consultation: ConsultationDep, organiser: OrganiserDep) -> Consultation:
    """The consultation, if this organiser administers it (403 for a moderator, an analyst)."""
    assert consultation.id is not None
    if not organiser.can(Permission.ADMINISTER, consultation.id):
        raise PageError(403, "console.broadcasts.admins_only", slug=consultation.slug)
    return consultation


AdministeredDep = Annotated[Consultation, Depends(_administered)]


@dataclass
class Form:
    """The compose form as typed, to show it again with its faults."""

    texts: dict[str, str]
    button: bool = False
    template: str = ""
    audience: str = "all"
    when: str = "now"
    at: str = ""
    every: str = ""
    paid: bool = False


def _text(value: Any) -> str:
    return value[:FIELD_MAX] if isinstance(value, str) else ""


async def _read_form(request: Request, consultation: Consultation) -> Form:
    data = await request.form()
    when = _text(data.get("when"))
    return Form(
        texts={lang: _text(data.get(f"text-{lang}")) for lang in consultation.locales},
        button=data.get("button") == "on",
        template=_text(data.get("template")),
        audience=_text(data.get("audience")) or "all",
        when=when if when in WHENS else "now",
        at=_text(data.get("at")),
        every=_text(data.get("every")),
        paid=data.get("paid") == "on",
    )


def _typed_texts(form: Form, consultation: Consultation) -> dict[str, str]:
    """The texts to send: a locale left blank (other than the default) reads the default's."""
    return {
        lang: text
        for lang, text in form.texts.items()
        if text.strip() or lang == consultation.default_locale
    }


def _fault(page: Page, error: Invalid) -> str:
    return page.t(error.msgid, **error.values)


def _compose_page(
    page: Page,
    consultation: Consultation,
    form: Form,
    faults: dict[str, str] | None = None,
    position: int | None = None,
    status: int = 200,
) -> Response:
    settings = settings_of(consultation).broadcasts
    return page.render(
        "broadcast_compose.html",
        status=status,
        consultation=consultation,
        form=form,
        faults=faults or {},
        position=position,
        templates=[template.name for template in settings.templates],
        time_zone=settings.time_zone,
    )


@router.get("/c/{slug}/broadcasts")
async def broadcasts(
    consultation: ConsultationDep, organiser: OrganiserDep, session: SessionDep, page: PageDep
) -> Response:
    assert consultation.id is not None
    async with session.begin():
        views = await list_broadcasts(session, consultation.id)
    listed = [{"view": view, **progress(dict(view.counts))} for view in views]
    return page.render(
        "broadcasts.html",
        consultation=consultation,
        broadcasts=listed,
        shown_state=shown_state,
        zone=zone_of(consultation),
        can_send=organiser.can(Permission.ADMINISTER, consultation.id),
    )


@router.get("/c/{slug}/broadcasts/new")
async def new_broadcast(consultation: AdministeredDep, page: PageDep) -> Response:
    texts = dict.fromkeys(consultation.locales, "")
    return _compose_page(page, consultation, Form(texts=texts))


@router.get("/c/{slug}/broadcasts/audience")
async def audience_count(
    consultation: ConsultationDep,
    console: ConsoleDep,
    session: SessionDep,
    page: PageDep,
    audience: Annotated[str, Query(max_length=2000)] = "all",
) -> Response:
    """The live count under the audience field (an htmx fragment), or its fault."""
    try:
        expression = check_audience(consultation, audience or "all")
    except Invalid as error:
        return page.render(
            "broadcast_audience.html",
            fault=_fault(page, error),
            position=error.position,
            expression=audience,
            size=None,
        )
    async with session.begin():
        size = await audience_size(session, consultation, expression, console.clock())
    return page.render(
        "broadcast_audience.html", fault=None, position=None, expression=audience, size=size
    )


@router.post("/c/{slug}/broadcasts/preview", dependencies=[CsrfChecked])
async def preview(
    request: Request,
    consultation: ConsultationDep,
    console: ConsoleDep,
    session: SessionDep,
    page: PageDep,
) -> Response:
    """What each locale's recipients would read, as the audience's channels show it, and
    what a paid Telegram broadcast costs (an htmx fragment), or what to fix first."""
    form = await _read_form(request, consultation)
    if not any(text.strip() for text in form.texts.values()):
        return page.render("broadcast_preview.html", fault=None, previews=[], stars=None)
    try:
        content = check_message(
            consultation, _typed_texts(form, consultation), form.button, form.template or None
        )
    except Invalid as error:
        return page.render(
            "broadcast_preview.html", fault=_fault(page, error), previews=[], stars=None
        )
    channels: dict[str, int] = {}
    try:
        expression = check_audience(consultation, form.audience)
    except Invalid:  # said under the audience field already
        expression = None
    if expression is not None:
        async with session.begin():
            size = await audience_size(session, consultation, expression, console.clock())
        channels = size.by_channel
    telegram = channels.get("telegram", 0)
    per_second = console.settings.telegram_paid_broadcast_per_second
    return page.render(
        "broadcast_preview.html",
        fault=None,
        previews=preview_of(consultation, content, list(channels)),
        stars=telegram_stars(telegram, per_second) if form.paid and telegram else None,
    )


@router.post("/c/{slug}/broadcasts/test", dependencies=[CsrfChecked])
async def send_test_message(
    request: Request,
    consultation: ConsultationDep,
    organiser: OrganiserDep,
    console: ConsoleDep,
    page: PageDep,
) -> Response:
    """Send me a test: the message as composed, at once, to the organiser's own address
    (an htmx fragment saying what became of it, or what to fix; never the address).
    Administrators and moderators, as in the API."""
    assert consultation.id is not None
    if not organiser.can(Permission.MODERATE, consultation.id):
        raise PageError(403, "console.broadcasts.test_forbidden", slug=consultation.slug)
    form = await _read_form(request, consultation)
    data = await request.form()
    try:
        to = parse_to(_text(data.get("test-to")))
        content = check_message(
            consultation, _typed_texts(form, consultation), form.button, form.template or None
        )
        locale = check_locale(consultation, _text(data.get("test-locale")) or None)
        rt, actor = console.runtime(), _actor(organiser)
        outcome = await send_test(rt, console.settings, consultation, content, to, locale, actor)
    except Invalid as error:
        return page.render("broadcast_test.html", fault=_fault(page, error), said=None, sent=False)
    said = page.t(outcome.msgid, **outcome.values)
    return page.render("broadcast_test.html", fault=None, said=said, sent=outcome.sent)


@router.post("/c/{slug}/broadcasts", dependencies=[CsrfChecked])
async def create(
    request: Request,
    consultation: AdministeredDep,
    organiser: OrganiserDep,
    console: ConsoleDep,
    session: SessionDep,
    page: PageDep,
) -> Response:
    """Schedule the broadcast and go to its page; the compose page again (422) with each
    fault under its field, nothing written, otherwise."""
    form = await _read_form(request, consultation)
    now = console.clock()
    try:
        composed = compose(
            consultation,
            _typed_texts(form, consultation),
            form.button,
            form.template or None,
            form.audience,
        )
        first_at = first_moment(consultation, _moment(form), now)
        every = form.every.strip() if form.when == "every" else None
        if form.when == "every" and not every:
            raise Invalid("every", "console.broadcasts.every_missing")
        async with session.begin():
            try:
                broadcast = await create_broadcast(
                    session,
                    consultation,
                    composed.content,
                    composed.audience,
                    first_at,
                    every,
                    next_fire,
                    Actor(organiser.email, Source.CONSOLE),
                    now,
                    paid=form.paid,
                )
            except ScheduleError as error:
                where = "every" if "every" in error.msgid else "at"
                raise Invalid.of(where, error) from None
    except Invalid as error:
        faults = {error.field: _fault(page, error)}
        return _compose_page(page, consultation, form, faults, error.position, status=422)
    target = f"{base_path(request)}/c/{consultation.slug}/broadcasts/{broadcast.id}"
    return RedirectResponse(target, status_code=303)


def _moment(form: Form) -> datetime | Literal["now"]:
    """The form's "when" as `first_moment` reads it: now, or the date and time typed."""
    if form.when == "now" or (form.when == "every" and not form.at):
        return "now"
    try:
        return datetime.fromisoformat(form.at)
    except ValueError:
        raise Invalid("at", "console.broadcasts.at_unreadable") from None


def zone_of(consultation: Consultation) -> ZoneInfo:
    """The consultation's time zone: times are shown as its organisers schedule them."""
    return ZoneInfo(settings_of(consultation).broadcasts.time_zone)


def shown_state(state: str, running: bool) -> str:
    """The state an organiser reads: a broadcast whose messages are still going out is
    "sending", even when no occurrence is left to plan (done) or one is to come (scheduled)."""
    return "sending" if running and state in ("scheduled", "done") else state


def progress(counts: dict[str, int]) -> dict[str, Any]:
    """How far a broadcast went: messages settled out of all written, and whether some are
    still to go (the page then refreshes its figures)."""
    settled = sum(counts.get(state, 0) for state in SETTLED)
    pending = sum(counts.get(state, 0) for state in PENDING)
    total = settled + pending
    return {"settled": settled, "total": total, "running": pending > 0}


async def _broadcast(
    session: SessionDep, consultation: Consultation, broadcast_id: int
) -> tuple[Any, Any]:
    async with session.begin():
        broadcast = await session.get(Broadcast, broadcast_id)
        if broadcast is None or broadcast.consultation_id != consultation.id:
            raise PageError(404, "console.broadcasts.unknown", id=broadcast_id)
        assert consultation.id is not None
        views = await list_broadcasts(session, consultation.id)
    return next(view for view in views if view.id == broadcast_id), broadcast


async def _figures(
    session: SessionDep, consultation: Consultation, broadcast_id: int, now: datetime
) -> dict[str, Any]:
    view, _ = await _broadcast(session, consultation, broadcast_id)
    async with session.begin():
        stats = await broadcast_stats(session, broadcast_id, now)
    counts = {state: int(getattr(stats, state, 0)) for state in (*SETTLED, *PENDING)}
    return {
        "view": view,
        "stats": stats,
        "shown_state": shown_state,
        "zone": zone_of(consultation),
        **progress(counts),
    }


@router.get("/c/{slug}/broadcasts/{broadcast_id}")
async def broadcast_page(
    broadcast_id: BroadcastId,
    consultation: ConsultationDep,
    organiser: OrganiserDep,
    console: ConsoleDep,
    session: SessionDep,
    page: PageDep,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    assert consultation.id is not None
    figures = await _figures(session, consultation, broadcast_id, console.clock())
    return page.render(
        "broadcast_page.html",
        consultation=consultation,
        can_send=organiser.can(Permission.ADMINISTER, consultation.id),
        done=done if done in CHANGES else None,
        **figures,
    )


@router.get("/c/{slug}/broadcasts/{broadcast_id}/progress")
async def broadcast_progress(
    broadcast_id: BroadcastId,
    consultation: ConsultationDep,
    organiser: OrganiserDep,
    console: ConsoleDep,
    session: SessionDep,
    page: PageDep,
) -> Response:
    """The progress bar, the stats and the buttons (an htmx fragment the page polls while
    it runs)."""
    assert consultation.id is not None
    figures = await _figures(session, consultation, broadcast_id, console.clock())
    return page.render(
        "broadcast_progress.html",
        consultation=consultation,
        can_send=organiser.can(Permission.ADMINISTER, consultation.id),
        **figures,
    )


CHANGES = {"pause": pause, "resume": resume, "cancel": cancel}


@router.post("/c/{slug}/broadcasts/{broadcast_id}/{change}", dependencies=[CsrfChecked])
async def change_broadcast(
    request: Request,
    broadcast_id: BroadcastId,
    change: str,
    consultation: AdministeredDep,
    organiser: OrganiserDep,
    console: ConsoleDep,
    session: SessionDep,
    page: PageDep,
) -> Response:
    """Pause, resume or cancel, then back to the broadcast's page saying so; 409 with why
    for a change its state does not allow."""
    action = CHANGES.get(change)
    if action is None:
        raise PageError(404, "console.broadcasts.unknown", id=broadcast_id)
    await _broadcast(session, consultation, broadcast_id)
    try:
        async with session.begin():
            await action(session, broadcast_id, _actor(organiser), console.clock())
    except BroadcastStateError as error:
        values = dict(getattr(error, "values", None) or {})
        raise PageError(409, error.msgid, **values) from None
    target = f"{base_path(request)}/c/{consultation.slug}/broadcasts/{broadcast_id}?done={change}"
    return RedirectResponse(target, status_code=303)


def _actor(organiser: OrganiserView) -> Actor:
    return Actor(organiser.email, Source.CONSOLE)
