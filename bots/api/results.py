"""The organiser API's stored results: `GET /api/consultations/{slug}/results/latest`.

It reads the latest snapshot (`core.results.recompute`, computed by the scheduler every
`results_every_minutes`) and never computes on a request: groups, group-informed consensus,
representative statements, the consensus / controversy / rejection / limbo lists, weighted
figures and trust counts. 404 until a first snapshot is stored, saying when one comes.
(`GET /api/consultations/{slug}/results`, in `bots.results`, answers the report stored with
the same snapshot, in the language asked for; it too computes nothing on a request.)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from bots.api.deps import ApiProblem, OrganiserDep, RuntimeDep, consultation_for
from bots.api.schemas import Problem
from core.i18n import negotiate
from core.organisers import Permission
from core.results.recompute import DASHBOARD
from core.results.snapshot import latest_snapshot


class EstimatePublic(BaseModel):
    """A rate (share of 1) with its 95% interval."""

    value: float
    low: float
    high: float


class WeightedPublic(BaseModel):
    voters: int
    effective_voters: float
    agree: EstimatePublic
    disagree: EstimatePublic
    neutral: EstimatePublic


class ConsensusPublic(BaseModel):
    """Polis's group-informed consensus: the product over groups of (A_g+1)/(S_g+2)."""

    agree: float
    disagree: float


class ProposalPublic(BaseModel):
    ref: str
    text: str
    votes: int
    zone: str
    agree: EstimatePublic
    disagree: EstimatePublic
    neutral: EstimatePublic
    qualifications: dict[str, int]
    weighted: WeightedPublic | None
    consensus: ConsensusPublic | None
    # Per opinion group, [agree, disagree, pass]; null for a group too small to show.
    groups: list[list[int] | None]


class RepresentativePublic(BaseModel):
    ref: str
    repful_for: str
    n_success: int
    n_trials: int
    p_success: float
    repness: float


class GroupPublic(BaseModel):
    id: int
    name: str
    size: int | None  # null: fewer than `fewer_than` people, not shown
    fewer_than: int | None
    representative: list[RepresentativePublic]


class TrustPublic(BaseModel):
    exclude_untrusted: bool
    participants: int
    untrusted: int
    reasons: dict[str, int]
    untrusted_votes: int
    left_out_votes: int


class WeightingPublic(BaseModel):
    questions: list[str]
    participants: int
    unplaced: int
    effective_size: float
    design_effect: float
    trim: float | None
    trimmed: int
    within_cap: bool
    converged: bool


class StoredResultsPublic(BaseModel):
    """A consultation's latest stored results (see the module docstring)."""

    slug: str
    locale: str
    votes_counted: Literal["all", "trusted"]
    computed_at: datetime
    next_at: datetime
    participants: int
    votes: int
    consensus: list[str]
    controversies: list[str]
    rejected: list[str]
    limbo: list[str]
    proposals: list[ProposalPublic]
    groups_reason: str | None
    clustered: int
    groups: list[GroupPublic]
    group_informed_consensus: list[str]  # refs, most agreed across every group first
    majority_agree: list[str]
    majority_disagree: list[str]
    uncertain: list[str]
    trust: TrustPublic
    weighting: WeightingPublic | None
    weighting_problem: dict[str, str] | None


def _group_name(index: int) -> str:
    return chr(ord("A") + index) if index < 26 else str(index + 1)


def stored_results(
    payload: dict[str, Any], slug: str, locale: str, trust: str, computed_at: datetime, every: float
) -> StoredResultsPublic:
    """The response for a snapshot's `payload`, texts in `locale` (else the first stored)."""
    dashboard = payload[DASHBOARD]
    kind: Literal["all", "trusted"] = (
        "trusted" if trust == "trusted" and dashboard["reports"]["trusted"] else "all"
    )
    reports = dashboard["reports"][kind]
    chosen = locale if locale in reports else next(iter(reports))
    report = reports[chosen]
    weighting = dashboard["weighting"]
    weighted = {p["ref"]: p for p in weighting["proposals"]} if weighting else {}
    grouped = {p["ref"]: p for p in payload["proposals"]}
    qualifications = dashboard["qualifications"]
    proposals = []
    for p in report["proposals"]:
        w, g = weighted.get(p["ref"]), grouped.get(p["ref"], {})
        proposals.append(
            ProposalPublic(
                ref=p["ref"],
                text=p["text"],
                votes=p["votes"],
                zone=p["zone"],
                agree=EstimatePublic(**p["agree"]),
                disagree=EstimatePublic(**p["disagree"]),
                neutral=EstimatePublic(**p["neutral"]),
                qualifications=qualifications.get(p["ref"], {}),
                weighted=None if w is None else WeightedPublic(**w),
                consensus=ConsensusPublic(**g["consensus"]) if "consensus" in g else None,
                groups=g.get("groups", []),
            )
        )
    groups = [
        GroupPublic(
            id=group["id"],
            name=_group_name(group["id"]),
            size=group.get("size"),
            fewer_than=group.get("fewer_than"),
            representative=[RepresentativePublic(**r) for r in group.get("representative", [])],
        )
        for group in payload["groups"]
    ]
    ranked = sorted(
        (p for p in payload["proposals"] if sum(p["counts"]) and "consensus" in p),
        key=lambda p: -p["consensus"]["agree"],
    )
    return StoredResultsPublic(
        slug=slug,
        locale=chosen,
        votes_counted=kind,
        computed_at=computed_at,
        next_at=computed_at + timedelta(minutes=every),
        participants=report["participants"],
        votes=report["votes"],
        consensus=report["consensus"],
        controversies=report["controversies"],
        rejected=report["rejected"],
        limbo=report["limbo"],
        proposals=proposals,
        groups_reason=payload["groups_reason"],
        clustered=payload["clustered"],
        groups=groups,
        group_informed_consensus=[p["ref"] for p in ranked],
        majority_agree=payload["majority_agree"],
        majority_disagree=payload["majority_disagree"],
        uncertain=payload["uncertain"],
        trust=TrustPublic(**dashboard["trust"]),
        weighting=None
        if weighting is None
        else WeightingPublic(**{k: v for k, v in weighting.items() if k != "proposals"}),
        weighting_problem=dashboard["weighting_problem"],
    )


_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem},
    403: {"model": Problem},
    404: {"model": Problem, "description": "unknown consultation, or no results stored yet"},
}


def stored_results_router(every_minutes: float) -> APIRouter:
    """The route; `every_minutes` is the settings' `results_every_minutes`."""
    router = APIRouter(prefix="/api", tags=["organiser"])

    @router.get(
        "/consultations/{slug}/results/latest",
        response_model=StoredResultsPublic,
        responses=_RESPONSES,
    )
    async def latest_results(
        slug: str,
        rt: RuntimeDep,
        organiser: OrganiserDep,
        locale: Annotated[str | None, Query(max_length=16, description="e.g. fr or en")] = None,
        trust: Annotated[
            Literal["all", "trusted"], Query(description="trusted: untrusted votes left out")
        ] = "all",
    ) -> StoredResultsPublic:
        """The latest stored results (never computed on a request; 404 before the first)."""
        consultation = await consultation_for(rt, organiser, slug, Permission.READ)
        assert consultation.id is not None
        async with rt.sessions() as session:
            snapshot = await latest_snapshot(session, consultation.id)
        if snapshot is None or DASHBOARD not in snapshot.payload:
            minutes = f"{every_minutes:g}"
            raise ApiProblem(
                404,
                "results.snapshot_not_yet",
                {"every_minutes": every_minutes},
                slug=slug,
                minutes=minutes,
            )
        chosen = negotiate(locale or "", consultation.locales) or consultation.default_locale
        return stored_results(
            snapshot.payload, consultation.slug, chosen, trust, snapshot.computed_at, every_minutes
        )

    return router
