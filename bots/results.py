"""The organiser's results: `consult results SLUG` and `GET /api/consultations/{slug}/results`.

`consult results` is thin glue around `core.report.consultation_report`; the API's route reads
the report the scheduler stored with the latest snapshot (`core.results.recompute`), never
computing on a request. What the report hides to keep employees anonymous is decided in
`core.report`, not here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from babel.dates import format_datetime
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sqlmodel.ext.asyncio.session import AsyncSession

from bots.api.deps import OrganiserDep, require
from bots.bootstrap import Runtime, runtime
from bots.errors import OrganiserError
from bots.settings import Settings
from core.definitions import consultation_by_slug, profile_questions_of
from core.flow import utc_now
from core.i18n import FALLBACK, Translator, available_locales, negotiate
from core.organisers import Permission
from core.report import (
    Report,
    UnknownSegment,
    consultation_report,
    consultation_slugs,
)
from core.results.groups import NO_PROPOSALS, NO_SPREAD, TOO_FEW_PARTICIPANTS
from core.results.recompute import DASHBOARD, groups_only, recompute_results, stored_breakdown
from core.results.snapshot import latest_snapshot
from core.results.trust import Reason, TrustSummary, consultation_trust
from core.results.weighting import UnreachableMargin, WeightedProposal, Weighting, weighted_figures
from core.scoring import Estimate

USAGE_ERROR = 2

# The statuses' names as an organiser reads them (literal msgids, so the i18n test sees them).
_STATUS = {
    "pending": "results.status.pending",
    "accepted": "results.status.accepted",
    "refused": "results.status.refused",
    "postponed": "results.status.postponed",
    "archived": "results.status.archived",
    "withdrawn": "results.status.withdrawn",
}


# Why a participant is untrusted, as an organiser reads it (`core.results.trust`).
_REASON = {
    Reason.TOO_FAST: "results.reason.too_fast",
    Reason.SAME_ANSWER: "results.reason.same_answer",
    Reason.SOURCE_BURST: "results.reason.source_burst",
    Reason.ONE_PROPOSAL: "results.reason.one_proposal",
    Reason.PUSHED_LINKS: "results.reason.pushed_links",
}


@dataclass(frozen=True)
class Results:
    """The report, with what trust (always) and weighting (with declared margins) add."""

    report: Report
    trust: TrustSummary
    weighting: Weighting | None

    def as_dict(self) -> dict[str, Any]:
        weighting = None if self.weighting is None else self.weighting.as_dict()
        return {**self.report.as_dict(), "trust": self.trust.as_dict(), "weighting": weighting}


async def _report(session: AsyncSession, slug: str, locale: str, segment_by: str | None) -> Results:
    consultation = await consultation_by_slug(session, slug)
    if consultation is None:
        known = ", ".join(await consultation_slugs(session)) or "-"
        raise OrganiserError("results.unknown_slug", slug=slug, known=known)
    trust = await consultation_trust(session, consultation)
    left_out = trust.untrusted if trust.summary.exclude_untrusted else frozenset()
    try:
        report = await consultation_report(
            session,
            consultation,
            locale=negotiate(locale, consultation.locales) or consultation.default_locale,
            segment_by=segment_by,
            now=utc_now(),
            left_out=trust.left_out,
        )
        weighting = await weighted_figures(session, consultation, left_out=left_out)
    except UnknownSegment as error:
        valid = ", ".join(error.valid) or "-"
        raise OrganiserError(
            "results.unknown_question", slug=slug, question=error.question, valid=valid
        ) from None
    except UnreachableMargin as error:
        raise OrganiserError(
            "results.unreachable_margin", slug=slug, question=error.question, option=error.option
        ) from None
    return Results(report, trust.summary, weighting)


# --- the command ------------------------------------------------------------------------------


def add_results_command(commands: Any) -> None:
    """`consult results SLUG [--json] [--by QUESTION] [--locale L]`."""
    results = commands.add_parser("results", help="show a consultation's results")
    results.add_argument("slug", metavar="SLUG")
    results.add_argument("--json", action="store_true", help="print the report as JSON")
    results.add_argument(
        "--by", metavar="QUESTION", help="break results down by a profile question's answers"
    )
    results.add_argument(
        "--locale", help="the language of the proposals' texts (default: yours, if offered)"
    )
    results.add_argument(
        "--refresh",
        action="store_true",
        help="compute the opinion groups again (else the latest stored results are shown)",
    )


async def show_results(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    """Print the report; an unknown slug or question is a message and exit code 2."""
    async with runtime(settings) as rt, rt.sessions() as session:
        try:
            results = await _report(session, args.slug, args.locale or t.locale, args.by)
        except OrganiserError as problem:
            print(f"consult: {t(problem.msgid, **problem.values)}", file=sys.stderr)
            return USAGE_ERROR
        groups = await opinion_groups_of(session, args.slug, refresh=args.refresh)
    if args.json:
        print(json.dumps(results.as_dict() | groups, indent=2, ensure_ascii=False))
    else:
        print(render_results(results, t))
        print("\n" + render_groups(groups, results.report, t))
    return 0


def render_results(results: Results, t: Translator) -> str:
    """The report as text, with its trust and weighting lines."""
    weighted = None
    if results.weighting is not None:
        weighted = {proposal.ref: proposal for proposal in results.weighting.proposals}
    lines = [render_report(results.report, t, weighted), "", *_trust_lines(results.trust, t)]
    if results.weighting is not None:
        lines += ["", *_weighting_lines(results.weighting, t)]
    return "\n".join(lines)


def _trust_lines(trust: TrustSummary, t: Translator) -> list[str]:
    reasons = ", ".join(
        f"{t(_REASON[reason])} {t.number(trust.reasons.get(reason.value, 0))}"
        for reason in Reason
        if trust.reasons.get(reason.value, 0)
    )
    values = {
        "untrusted": t.number(trust.untrusted),
        "participants": t.number(trust.participants),
        "votes": t.number(trust.untrusted_votes),
        "reasons": reasons or "-",
    }
    if trust.exclude_untrusted:
        return [t("results.trust_left_out", **values)]
    return [t("results.trust_kept", **values)]


def _weighting_lines(weighting: Weighting, t: Translator) -> list[str]:
    lines = [
        t("results.section.weighting", questions=", ".join(weighting.questions)),
        "  "
        + t(
            "results.weighting",
            participants=t.number(weighting.participants - weighting.unplaced),
            effective=t.number(round(weighting.effective_size, 1)),
            design_effect=t.number(round(weighting.design_effect, 2)),
        ),
        "  " + t("results.weighting_unplaced", count=t.number(weighting.unplaced)),
        "  "
        + t(
            "results.weighting_trim",
            trim=t.number(weighting.trim or 0),
            count=t.number(weighting.trimmed),
        ),
    ]
    if not weighting.within_cap:
        lines.append("  " + t("results.weighting_cap_not_held"))
    if not weighting.converged:
        lines.append("  " + t("results.weighting_not_converged"))
    return lines


def _rate(t: Translator, estimate: Estimate) -> str:
    low, high = max(estimate.low, 0.0), min(estimate.high, 1.0)
    return f"{t.percent(estimate.value)} ({t.percent(low)}–{t.percent(high)})"


def _score(t: Translator, estimate: Estimate) -> str:
    return f"{t.number(round(estimate.value, 2))} ± {t.number(round(estimate.margin, 2))}"


def render_report(
    report: Report, t: Translator, weighted: Mapping[str, WeightedProposal] | None = None
) -> str:
    """The report as text for a terminal, in the organiser's language; `weighted` puts each
    proposal's weighted rates under its own."""
    statuses = ", ".join(
        f"{t(_STATUS[status]) if status in _STATUS else status} {t.number(count)}"
        for status, count in report.proposals_by_status.items()
    )
    lines = [
        t("results.heading", slug=report.slug, question=report.question),
        t(
            "results.totals",
            participants=t.number(report.participants),
            votes=t.number(report.votes),
            statuses=statuses or "-",
        ),
        t("results.legend"),
    ]
    withdrawn = report.proposals_by_status.get("withdrawn", 0)
    if withdrawn:  # taken back after acceptance: apart from the accepted ones, not mixed in
        lines.insert(2, t("results.withdrawn_left_out", count=t.number(withdrawn)))
    by_ref = {proposal.ref: proposal for proposal in report.proposals}
    sections = (
        ("results.section.consensus", report.consensus),
        ("results.section.controversies", report.controversies),
        ("results.section.rejected", report.rejected),
        ("results.section.limbo", report.limbo),
    )
    for msgid, refs in sections:
        lines += ["", t(msgid)]
        if not refs:
            lines.append("  " + t("results.none"))
        for ref in refs:
            p = by_ref[ref]
            lines.append(f"  {p.ref}  {p.text}")
            lines.append(
                "      "
                + t(
                    "results.proposal",
                    votes=t.number(p.votes),
                    agree=_rate(t, p.agree),
                    disagree=_rate(t, p.disagree),
                    neutral=_rate(t, p.neutral),
                )
            )
            lines.append(
                "      "
                + t(
                    "results.scores",
                    top=_score(t, p.top),
                    controversy=_score(t, p.controversy),
                    rejection=_score(t, p.rejection),
                )
            )
            if weighted is not None and p.ref in weighted:
                w = weighted[p.ref]
                lines.append(
                    "      "
                    + t(
                        "results.weighted",
                        agree=_rate(t, w.rates["agree"]),
                        disagree=_rate(t, w.rates["disagree"]),
                        neutral=_rate(t, w.rates["neutral"]),
                        effective=t.number(round(w.effective_voters, 1)),
                        voters=t.number(w.voters),
                    )
                )
    if report.breakdown is not None:
        breakdown = report.breakdown
        lines += ["", t("results.breakdown", question=breakdown.label)]
        for segment in breakdown.segments:
            if segment.participants is None:
                lines.append(
                    "  "
                    + t(
                        "results.segment_suppressed",
                        label=segment.label,
                        minimum=breakdown.min_segment_size,
                    )
                )
                continue
            participants = t.number(segment.participants)
            lines.append("  " + t("results.segment", label=segment.label, count=participants))
            for cell in segment.proposals:
                if cell.shares is None:
                    text = t(
                        "results.cell_suppressed", ref=cell.ref, minimum=breakdown.min_segment_size
                    )
                else:
                    text = t(
                        "results.cell",
                        ref=cell.ref,
                        agree=t.percent(cell.shares["agree"]),
                        disagree=t.percent(cell.shares["disagree"]),
                        neutral=t.percent(cell.shares["neutral"]),
                    )
                lines.append("    " + text)
    return "\n".join(lines)


# --- the organiser API ------------------------------------------------------------------------


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


def results_router(settings: Settings) -> APIRouter:
    """The organiser API's results route, for organisers who may read the consultation.

    The bearer token is an organiser's API token (`consult organiser token`) or the legacy
    CONSULT_ORGANISER_TOKEN (an administrator): 401 without one or with an unknown one, 403
    for an organiser with no role on this consultation (`bots.api.deps`).
    """
    router = APIRouter(prefix="/api/consultations", tags=["organiser"])

    @router.get("/{slug}/results")
    async def consultation_results(
        slug: str,
        rt: RuntimeDep,
        organiser: OrganiserDep,
        by: Annotated[str | None, Query(description="a profile question's id")] = None,
        locale: Annotated[str | None, Query(description="e.g. fr or en")] = None,
    ) -> JSONResponse:
        """The consultation's report as JSON, as stored with the latest snapshot (404 unknown
        slug or none stored yet, 422 unknown question or unreachable margin)."""
        t = Translator(negotiate(locale, available_locales()) or FALLBACK)
        async with rt.sessions() as session:
            consultation = await consultation_by_slug(session, slug)
            if consultation is None:
                known = ", ".join(await consultation_slugs(session)) or "-"
                raise HTTPException(404, t("results.unknown_slug", slug=slug, known=known))
            assert consultation.id is not None
            require(organiser, Permission.READ, consultation.id)
            snapshot = await latest_snapshot(session, consultation.id)
        questions = [question.id for question in profile_questions_of(consultation)]
        if by is not None and by not in questions:
            valid = ", ".join(questions) or "-"
            detail = t("results.unknown_question", slug=slug, question=by, valid=valid)
            raise HTTPException(422, detail)
        every = settings.results_every_minutes
        if snapshot is None or DASHBOARD not in snapshot.payload:
            detail = t("results.snapshot_not_yet", slug=slug, minutes=f"{every:g}")
            body = {"detail": detail, "code": "results.snapshot_not_yet", "every_minutes": every}
            return JSONResponse(body, 404)
        dashboard = snapshot.payload[DASHBOARD]
        if dashboard["weighting_problem"] is not None:
            problem = dashboard["weighting_problem"]
            detail = t("results.unreachable_margin", slug=slug, **problem)
            raise HTTPException(422, detail)
        # The scores the consultation shows: without the untrusted votes when it leaves them
        # out (stored apart only when someone is untrusted).
        trusted = dashboard["reports"]["trusted"]
        reports = trusted if dashboard["trust"]["exclude_untrusted"] and trusted else None
        reports = reports or dashboard["reports"]["all"]
        chosen = negotiate(locale or "", consultation.locales) or consultation.default_locale
        if chosen not in reports:  # a language added since it was computed
            default = consultation.default_locale
            chosen = default if default in reports else next(iter(reports))
        report = dict(reports[chosen])
        if by is not None:
            breakdown = stored_breakdown(dashboard, by, chosen)
            if breakdown is None and chosen == consultation.default_locale:
                breakdown = dashboard["breakdowns"].get(by)  # stored before labels were
            if breakdown is None:
                detail = t(
                    "results.breakdown_not_stored",
                    slug=slug,
                    question=by,
                    locale=chosen,
                    minutes=f"{every:g}",
                )
                raise HTTPException(422, detail)
            report["breakdown"] = breakdown
        groups = groups_only(snapshot)
        body = report | {
            "trust": dashboard["trust"],
            "weighting": dashboard["weighting"],
            "opinion_groups": groups,
            "computed_at": snapshot.computed_at.isoformat(),
        }
        return JSONResponse(body)

    return router


# --- opinion groups (core.results.snapshot) ---------------------------------------------------

# Why there are no groups, as an organiser reads it (codes of `core.results.groups`).
_NO_GROUPS = {
    NO_PROPOSALS: "results.groups.no_proposals",
    TOO_FEW_PARTICIPANTS: "results.groups.too_few_participants",
    NO_SPREAD: "results.groups.no_spread",
}
SHOWN_CONSENSUS = 5


async def opinion_groups_of(session: AsyncSession, slug: str, *, refresh: bool) -> dict[str, Any]:
    """The latest stored groups of `slug` as `{"opinion_groups": payload, "computed_at": ...}`,
    computed and stored first when asked (`refresh`) or when none is stored yet; commits the
    session's transaction."""
    consultation = await consultation_by_slug(session, slug)
    assert consultation is not None and consultation.id is not None
    snapshot = None if refresh else await latest_snapshot(session, consultation.id)
    if snapshot is None:  # the whole snapshot the scheduler would store, dashboard included
        snapshot = await recompute_results(session, consultation, utc_now())
    await session.commit()
    return {
        "opinion_groups": groups_only(snapshot),
        "computed_at": snapshot.computed_at.isoformat(),
    }


def _group_name(index: int) -> str:
    """Groups are lettered as Polis letters them: A, B, C..."""
    return chr(ord("A") + index) if index < 26 else str(index + 1)


def render_groups(groups: dict[str, Any], report: Report, t: Translator) -> str:
    """The opinion groups, what each stands for, and what they agree on, as text."""
    payload = groups["opinion_groups"]
    # On one line each: texts imported from elsewhere may hold line breaks.
    texts = {proposal.ref: " ".join(proposal.text.split()) for proposal in report.proposals}
    computed = datetime.fromisoformat(groups["computed_at"])
    at = format_datetime(computed, "medium", tzinfo=computed.tzinfo, locale=t.locale)
    lines = [t("results.groups.computed", at=at)]
    if payload["groups_reason"] is not None:
        reason = t(_NO_GROUPS.get(payload["groups_reason"], "results.groups.no_spread"))
        lines.append(
            t("results.groups.none", reason=reason, clustered=t.number(payload["clustered"]))
        )
    else:
        lines.append(
            t(
                "results.groups.heading",
                count=t.number(len(payload["groups"])),
                clustered=t.number(payload["clustered"]),
            )
        )
        for group in payload["groups"]:
            name = _group_name(group["id"])
            if group.get("suppressed"):
                minimum = group["fewer_than"]
                lines.append("  " + t("results.groups.suppressed", name=name, minimum=minimum))
                continue
            lines.append("  " + t("results.groups.group", name=name, size=t.number(group["size"])))
            for statement in group["representative"]:
                msgid = (
                    "results.groups.agreed"
                    if statement["repful_for"] == "agree"
                    else "results.groups.disagreed"
                )
                share = statement["n_success"] / max(statement["n_trials"], 1)
                lines.append(
                    "    "
                    + t(
                        msgid,
                        ref=statement["ref"],
                        text=texts.get(statement["ref"], ""),
                        share=t.percent(share),
                        count=t.number(statement["n_success"]),
                        seen=t.number(statement["n_trials"]),
                    )
                )
        ranked = sorted(
            (p for p in payload["proposals"] if sum(p["counts"])),
            key=lambda p: -p["consensus"]["agree"],
        )
        lines += ["", t("results.groups.consensus")]
        for proposal in ranked[:SHOWN_CONSENSUS]:
            value = t.number(round(proposal["consensus"]["agree"], 3))
            lines.append(f"  {proposal['ref']}  {texts.get(proposal['ref'], '')}  ({value})")
    for msgid, key in (
        ("results.groups.majority_agree", "majority_agree"),
        ("results.groups.majority_disagree", "majority_disagree"),
        ("results.groups.uncertain", "uncertain"),
    ):
        lines += ["", t(msgid)]
        refs = payload[key]
        if not refs:
            lines.append("  " + t("results.none"))
        lines += [f"  {ref}  {texts.get(ref, '')}" for ref in refs[:SHOWN_CONSENSUS]]
        if len(refs) > SHOWN_CONSENSUS:
            more = t.number(len(refs) - SHOWN_CONSENSUS)
            lines.append("  " + t("results.groups.more", count=more))
    return "\n".join(lines)
