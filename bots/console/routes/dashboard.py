"""The dashboard: a consultation's Results and Live pages.

Both read the latest stored snapshot (`core.results.recompute`, computed by the scheduler every
`results_every_minutes`), never compute results on a page view; the Live page adds the
moderation figures of the overview (a few counts). Until a first snapshot is stored, each page
says when one comes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from bots.console.charts import series_colours, timeline
from bots.console.deps import ConsoleDep, ConsultationDep, PageDep, SessionDep
from bots.console.pages import Page, PageError
from bots.console.results_view import UnknownSegment, results_view
from bots.console.routes.consultations import STATUSES, question_of
from core.definitions import profile_questions_of
from core.i18n import negotiate
from core.models import Consultation, ResultSnapshot
from core.moderation.overview import consultation_overview
from core.results.live import NONE, OTHER
from core.results.recompute import DASHBOARD
from core.results.snapshot import latest_snapshot

router = APIRouter()


def _labels(
    consultation: Consultation, locale: str
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Profile questions' labels and their options' labels in `locale` (else the default)."""

    def pick(label: dict[str, str]) -> str:
        return (
            label.get(locale)
            or label.get(consultation.default_locale)
            or next(iter(label.values()), "")
        )

    questions = profile_questions_of(consultation)
    return (
        {q.id: pick(q.label) for q in questions},
        {q.id: {o.id: pick(o.label) for o in q.options} for q in questions},
    )


def _when(page: Page, snapshot: ResultSnapshot | None, every: float) -> dict[str, str | None]:
    """When the shown results were computed and when the next ones come."""
    if snapshot is None:
        return {
            "computed": None,
            "next": page.t("console.dashboard.none_yet", minutes=page.t.number(every)),
        }
    following = snapshot.computed_at + timedelta(minutes=every)
    return {
        "computed": page.t("console.dashboard.computed", at=page.when(snapshot.computed_at)),
        "next": page.t("console.dashboard.next", at=page.when(following)),
    }


async def _snapshot(session: SessionDep, consultation: Consultation) -> ResultSnapshot | None:
    assert consultation.id is not None
    async with session.begin():
        snapshot = await latest_snapshot(session, consultation.id)
    if snapshot is None or DASHBOARD not in snapshot.payload:
        return None
    return snapshot


@router.get("/c/{slug}/results")
async def results_page(
    consultation: ConsultationDep,
    console: ConsoleDep,
    session: SessionDep,
    page: PageDep,
    trust: Annotated[Literal["all", "trusted"], Query()] = "all",
    weighted: Annotated[bool, Query()] = False,
    segment: Annotated[str, Query(max_length=80)] = "",
) -> Response:
    snapshot = await _snapshot(session, consultation)
    locale = negotiate(page.t.locale, consultation.locales) or consultation.default_locale
    labels, _ = _labels(consultation, page.t.locale)
    view = None
    if snapshot is not None:
        try:
            view = results_view(
                snapshot.payload,
                page.t,
                locale,
                trust=trust,
                weighted=weighted,
                segment=segment,
                question_labels=labels,
            )
        except UnknownSegment as error:
            valid = ", ".join(error.valid) or "-"
            raise PageError(
                422, "console.dashboard.unknown_segment", segment=segment, valid=valid
            ) from None
    return page.render(
        "dashboard_results.html",
        consultation=consultation,
        question=question_of(consultation, page.t.locale),
        view=view,
        times=_when(page, snapshot, console.settings.results_every_minutes),
        filters={"trust": trust, "weighted": weighted, "segment": segment},
    )


def _chart(page: Page, rows: list[dict[str, Any]], title: str) -> dict[str, Any] | None:
    """A timeline of `rows` (day, series, count) with its legend, or None without data."""
    if not rows:
        return None
    series: dict[str, dict[str, int]] = defaultdict(dict)
    unnamed = {
        OTHER: page.t("console.dashboard.other_source"),
        NONE: page.t("console.dashboard.no_channel"),
    }
    for row in rows:
        series[unnamed.get(row["series"], row["series"])][row["day"]] = row["count"]
    days = sorted({row["day"] for row in rows})
    totals = ", ".join(f"{name} {page.t.number(sum(v.values()))}" for name, v in series.items())
    desc = page.t("console.dashboard.timeline_desc", first=days[0], last=days[-1], totals=totals)
    return {
        "title": title,
        "svg": timeline(series, days, title, desc, page.t.number),
        "legend": [
            (name, colour, sum(series[name].values()))
            for name, colour in series_colours(list(series))
        ],
    }


@router.get("/c/{slug}/live")
async def live_page(
    consultation: ConsultationDep,
    console: ConsoleDep,
    session: SessionDep,
    page: PageDep,
) -> Response:
    assert consultation.id is not None
    snapshot = await _snapshot(session, consultation)
    async with session.begin():
        figures = await consultation_overview(session, consultation.id, console.clock())
    charts = []
    engagement = []
    if snapshot is not None:
        live = snapshot.payload[DASHBOARD]["live"]
        t = page.t
        for rows, msgid in (
            (live["participants_by_source"], t("console.dashboard.participants_by_source")),
            (live["votes_by_channel"], t("console.dashboard.votes_by_channel")),
            (live["votes_by_source"], t("console.dashboard.votes_by_source")),
        ):
            chart = _chart(page, rows, msgid)
            if chart is not None:
                charts.append(chart)
        questions, options = _labels(consultation, page.t.locale)
        for item in live["engagement"]:
            engagement.append(
                {
                    "label": questions.get(item["question"], item["question"]),
                    "answers": [
                        {
                            "label": options.get(item["question"], {}).get(
                                a["option"], a["option"]
                            ),
                            **a,
                        }
                        for a in item["answers"]
                    ],
                }
            )
    return page.render(
        "dashboard_live.html",
        consultation=consultation,
        question=question_of(consultation, page.t.locale),
        figures=figures,
        statuses=STATUSES,
        charts=charts,
        engagement=engagement,
        snapshot=snapshot is not None,
        times=_when(page, snapshot, console.settings.results_every_minutes),
    )
