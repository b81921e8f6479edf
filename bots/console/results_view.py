"""What the dashboard's Results page shows, read from a stored snapshot's payload
(`core.results.snapshot`, `core.results.recompute`): nothing here queries or computes results.

The page's filters: `trust` ("all" votes, or "trusted" ones only, when someone is untrusted),
`weighted` (the weighted rates, when the consultation declares margins) and `segment`
("q:<question>:<option>", the participants who gave one answer, or "g:<group>", one opinion
group). A segment shows shares only (no interval); a segment or a group under the
consultation's `min_segment_size` shows no figure, as everywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from bots.console.charts import Interval, Point, group_map, split_bar
from core.i18n import Translator

KEYS = ("agree", "neutral", "disagree")
# Each list, its heading, and the rate whose interval placed a proposal in it.
SECTIONS = (
    ("consensus", "results.section.consensus", "agree"),
    ("controversies", "results.section.controversies", "agree"),
    ("rejected", "results.section.rejected", "disagree"),
    ("limbo", "results.section.limbo", "neutral"),
)
SHOWN_CONSENSUS = 5


class UnknownSegment(ValueError):
    """The `segment` filter names no answer or group of this consultation; `valid` lists those
    that exist."""

    def __init__(self, segment: str, valid: Sequence[str]) -> None:
        super().__init__(segment)
        self.segment = segment
        self.valid = tuple(valid)


@dataclass(frozen=True)
class Row:
    ref: str
    text: str
    figures: str  # the split in words
    chart: Markup | None  # None: the segment is too small to show
    qualifications: str
    hidden_note: str = ""


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    rows: list[Row]


@dataclass(frozen=True)
class Group:
    name: str
    size: int | None  # None: too small to show
    note: str
    statements: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ResultsView:
    sections: list[Section]
    segments: list[tuple[str, str]]  # (value, label) for the filter
    groups: list[Group]
    groups_note: str
    group_map: Markup | None
    consensus: list[tuple[str, str, str]]  # (ref, text, value)
    trust_line: str
    can_trust_filter: bool
    weighting_lines: list[str]
    can_weight: bool
    polis: bool


def group_name(index: int) -> str:
    """Groups are lettered as Polis letters them: A, B, C..."""
    return chr(ord("A") + index) if index < 26 else str(index + 1)


def _pct(t: Translator, x: float) -> str:
    return t.percent(min(max(x, 0.0), 1.0))


def _rate(t: Translator, e: Mapping[str, float]) -> str:
    return f"{_pct(t, e['value'])} ({_pct(t, e['low'])}–{_pct(t, e['high'])})"


def segment_options(
    dashboard: Mapping[str, Any],
    groups: Mapping[str, Any],
    labels: Mapping[str, str],
    t: Translator,
) -> list[tuple[str, str]]:
    """The segment filter's choices: each shown answer of each question, each shown group."""
    options = []
    for question, breakdown in dashboard["breakdowns"].items():
        for segment in breakdown["segments"]:
            if not segment.get("suppressed"):
                value = f"q:{question}:{segment['option']}"
                options.append((value, f"{labels.get(question, question)}: {segment['label']}"))
    for group in groups["groups"]:
        if not group.get("suppressed"):
            name = group_name(group["id"])
            options.append((f"g:{group['id']}", t("console.dashboard.group_option", name=name)))
    return options


def _segment_shares(
    segment: str, dashboard: Mapping[str, Any], groups: Mapping[str, Any], valid: Sequence[str]
) -> dict[str, dict[str, float] | None]:
    """Per ref, the chosen segment's shares (None: too few to show). Raises UnknownSegment."""
    if segment not in valid:
        raise UnknownSegment(segment, valid)
    kind, _, rest = segment.partition(":")
    if kind == "g":
        g = int(rest)
        found: dict[str, dict[str, float] | None] = {}
        for proposal in groups["proposals"]:
            counts = proposal["groups"][g] if g < len(proposal["groups"]) else None
            total = sum(counts) if counts else 0
            found[proposal["ref"]] = (
                None
                if not counts or not total
                else {
                    "agree": counts[0] / total,
                    "disagree": counts[1] / total,
                    "neutral": counts[2] / total,
                }
            )
        return found
    question, _, option = rest.partition(":")
    for part in dashboard["breakdowns"][question]["segments"]:
        if part["option"] == option:
            return {
                cell["ref"]: None if cell.get("suppressed") else {k: cell[k] for k in KEYS}
                for cell in part["proposals"]
            }
    raise UnknownSegment(segment, valid)  # pragma: no cover - listed in `valid`


def results_view(
    payload: Mapping[str, Any],
    t: Translator,
    locale: str,
    *,
    trust: str,
    weighted: bool,
    segment: str,
    question_labels: Mapping[str, str],
) -> ResultsView:
    """The Results page of `payload` in `t`'s language, texts in `locale`, with the filters
    applied. Raises UnknownSegment."""
    dashboard = payload["dashboard"]
    reports = dashboard["reports"]
    kind = "trusted" if trust == "trusted" and reports["trusted"] else "all"
    chosen = reports[kind]
    report = chosen.get(locale) or next(iter(chosen.values()))
    by_ref = {p["ref"]: p for p in report["proposals"]}
    weighting = dashboard["weighting"]
    weighed = {p["ref"]: p for p in weighting["proposals"]} if weighted and weighting else {}
    options = segment_options(dashboard, payload, question_labels, t)
    shares_of = (
        _segment_shares(segment, dashboard, payload, [v for v, _ in options]) if segment else None
    )
    qualifications = dashboard["qualifications"]
    minimum = next((b["min_segment_size"] for b in dashboard["breakdowns"].values()), None)
    sections = []
    for key, title, rate in SECTIONS:
        rows = []
        for ref in report[key]:
            p = by_ref[ref]
            source = weighed.get(ref, p)
            text = " ".join(p["text"].split())
            figures = t(
                "results.proposal",
                votes=t.number(p["votes"]),
                agree=_rate(t, source["agree"]),
                disagree=_rate(t, source["disagree"]),
                neutral=_rate(t, source["neutral"]),
            )
            quals = ", ".join(
                f"{t('qualification.' + q)} {t.number(n)}"
                for q, n in sorted(qualifications.get(ref, {}).items())
            )
            if shares_of is not None:
                shares = shares_of.get(ref)
                if shares is None:
                    note = t("results.cell_suppressed", ref=ref, minimum=minimum or "-")
                    rows.append(Row(ref, text, "", None, quals, note))
                    continue
                figures = " · ".join(f"{t('report.' + k)} {_pct(t, shares[k])}" for k in KEYS)
                chart = split_bar(shares, None, text[:80], figures)
            else:
                shares = {k: source[k]["value"] for k in KEYS}
                whisker = Interval(**source[rate])
                chart = split_bar(shares, whisker, text[:80], figures)
            rows.append(Row(ref, text, figures, chart, quals))
        sections.append(Section(key, t(title), rows))
    groups, groups_note, drawn, consensus = _groups(payload, t, by_ref)
    return ResultsView(
        sections=sections,
        segments=options,
        groups=groups,
        groups_note=groups_note,
        group_map=drawn,
        consensus=consensus,
        trust_line=_trust_line(dashboard["trust"], t),
        can_trust_filter=bool(reports["trusted"]),
        weighting_lines=_weighting_lines(weighting, dashboard["weighting_problem"], t),
        can_weight=weighting is not None,
        polis=any(ref.startswith("polis-") for ref in by_ref),
    )


def _groups(
    payload: Mapping[str, Any], t: Translator, by_ref: Mapping[str, Any]
) -> tuple[list[Group], str, Markup | None, list[tuple[str, str, str]]]:
    text = {ref: " ".join(p["text"].split()) for ref, p in by_ref.items()}
    reason = payload["groups_reason"]
    if reason is not None:
        why = t(
            {
                "no-proposals": "results.groups.no_proposals",
                "too-few-participants": "results.groups.too_few_participants",
            }.get(reason, "results.groups.no_spread")
        )
        note = t("results.groups.none", reason=why, clustered=t.number(payload["clustered"]))
        return [], note, None, []
    note = t(
        "results.groups.heading",
        count=t.number(len(payload["groups"])),
        clustered=t.number(payload["clustered"]),
    )
    groups = []
    for group in payload["groups"]:
        name = group_name(group["id"])
        if group.get("suppressed"):
            minimum = group["fewer_than"]
            groups.append(
                Group(name, None, t("results.groups.suppressed", name=name, minimum=minimum))
            )
            continue
        statements = []
        for s in group["representative"]:
            msgid = (
                "results.groups.agreed"
                if s["repful_for"] == "agree"
                else "results.groups.disagreed"
            )
            statements.append(
                t(
                    msgid,
                    ref=s["ref"],
                    text=text.get(s["ref"], ""),
                    share=t.percent(s["n_success"] / max(s["n_trials"], 1)),
                    count=t.number(s["n_success"]),
                    seen=t.number(s["n_trials"]),
                )
            )
        size = group["size"]
        groups.append(
            Group(name, size, t("results.groups.group", name=name, size=t.number(size)), statements)
        )
    names = [group_name(g["id"]) for g in payload["groups"]]
    shown = {g["id"] for g in payload["groups"] if not g.get("suppressed")}
    points = [Point(**p) for p in payload["map"] if p["group"] in shown]
    sizes = ", ".join(f"{g.name} {t.number(g.size)}" for g in groups if g.size is not None)
    drawn = group_map(
        points,
        names,
        t("console.dashboard.map_title"),
        t("console.dashboard.map_desc", sizes=sizes),
    )
    ranked = sorted(
        (p for p in payload["proposals"] if sum(p["counts"]) and "consensus" in p),
        key=lambda p: -p["consensus"]["agree"],
    )
    consensus = [
        (p["ref"], text.get(p["ref"], ""), t.number(round(p["consensus"]["agree"], 3)))
        for p in ranked[:SHOWN_CONSENSUS]
    ]
    return groups, note, drawn, consensus


def _trust_line(trust: Mapping[str, Any], t: Translator) -> str:
    reasons = ", ".join(
        f"{t('results.reason.' + reason.replace('-', '_'))} {t.number(n)}"
        for reason, n in trust["reasons"].items()
        if n
    )
    values = {
        "untrusted": t.number(trust["untrusted"]),
        "participants": t.number(trust["participants"]),
        "votes": t.number(trust["untrusted_votes"]),
        "reasons": reasons or "-",
    }
    if trust["exclude_untrusted"]:
        return t("results.trust_left_out", **values)
    return t("results.trust_kept", **values)


def _weighting_lines(
    weighting: Mapping[str, Any] | None, problem: Mapping[str, str] | None, t: Translator
) -> list[str]:
    if problem is not None:
        return [t("console.dashboard.unreachable_margin", **problem)]
    if weighting is None:
        return []
    return [
        t("results.section.weighting", questions=", ".join(weighting["questions"])),
        t(
            "results.weighting",
            participants=t.number(weighting["participants"] - weighting["unplaced"]),
            effective=t.number(round(weighting["effective_size"], 1)),
            design_effect=t.number(round(weighting["design_effect"], 2)),
        ),
        t("results.weighting_unplaced", count=t.number(weighting["unplaced"])),
    ]
