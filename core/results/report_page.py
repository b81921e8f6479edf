"""The organiser's report for their client: one self-contained HTML page.

Inline CSS (with `@media print` rules: A4 margins, no element cut across pages), charts drawn
here as SVG (no script, no web font, nothing fetched), texts from the catalogues in the
organiser's language. It shows the consensus, controversy and rejected lists with each
proposal's agree / neutral / disagree split and the 95% interval of the rate that placed it in
its list, the opinion groups' sizes with their representative statements, and the trust and
weighting lines. Like every export, it names no person: counts and proposal refs only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from core.i18n import Translator

BAR_WIDTH = 320
BAR_HEIGHT = 18
MAX_LISTED = 15
COLOURS = {"agree": "#2e7d32", "neutral": "#9e9e9e", "disagree": "#c62828"}
_KEYS = {"agree": "report.agree", "neutral": "report.neutral", "disagree": "report.disagree"}
GROUP_COLOURS = ("#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
max-width:60rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;
border-bottom:1px solid #ccc}h3{font-size:1rem;margin:1rem 0 .3rem}
.meta,.note{color:#555;font-size:.9rem}
ol{padding-left:1.4rem}li{margin:.6rem 0;break-inside:avoid}
.ref{color:#666;font-size:.8rem;margin-right:.4rem}
svg{display:block;max-width:100%;height:auto}
.legend span{display:inline-block;margin-right:1rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px}
@media print{body{margin:0;max-width:none;font-size:11pt}@page{size:A4;margin:15mm}
h2{break-after:avoid}section{break-inside:auto}li,figure{break-inside:avoid}a{color:inherit}}
"""


def _bar(proposal: Mapping[str, Any], whisker: str) -> str:
    """A stacked bar agree / neutral / disagree, with the `whisker` rate's 95% interval."""
    parts, x = [], 0.0
    for key in ("agree", "neutral", "disagree"):
        width = max(proposal[key]["value"], 0.0) * BAR_WIDTH
        parts.append(
            f'<rect x="{x:.1f}" y="3" width="{width:.1f}" height="{BAR_HEIGHT - 6}" '
            f'fill="{COLOURS[key]}"/>'
        )
        x += width
    value = proposal[whisker]
    low, high = max(value["low"], 0.0) * BAR_WIDTH, min(value["high"], 1.0) * BAR_WIDTH
    if whisker == "disagree":  # the disagree part sits at the right end
        low, high = BAR_WIDTH - high, BAR_WIDTH - low
    mid = BAR_HEIGHT / 2
    parts.append(
        f'<path d="M{low:.1f} {mid}H{high:.1f}M{low:.1f} 2V{BAR_HEIGHT - 2}'
        f'M{high:.1f} 2V{BAR_HEIGHT - 2}" stroke="#000" stroke-width="1.5" fill="none"/>'
    )
    return (
        f'<svg viewBox="0 0 {BAR_WIDTH} {BAR_HEIGHT}" width="{BAR_WIDTH}" '
        f'height="{BAR_HEIGHT}" role="img">{"".join(parts)}</svg>'
    )


def _rate(t: Translator, estimate: Mapping[str, float]) -> str:
    low, high = max(estimate["low"], 0.0), min(estimate["high"], 1.0)
    return f"{t.percent(estimate['value'])} ({t.percent(low)}–{t.percent(high)})"


def _list(
    t: Translator, msgid: str, refs: Sequence[str], by_ref: Mapping[str, Any], whisker: str
) -> str:
    items = []
    for ref in refs[:MAX_LISTED]:
        p = by_ref[ref]
        line = t(
            "results.proposal",
            votes=t.number(p["votes"]),
            agree=_rate(t, p["agree"]),
            disagree=_rate(t, p["disagree"]),
            neutral=_rate(t, p["neutral"]),
        )
        items.append(
            f'<li><span class="ref">{escape(ref)}</span>{escape(p["text"])}'
            f'<figure style="margin:.2rem 0">{_bar(p, whisker)}</figure>'
            f'<div class="note">{escape(line)}</div></li>'
        )
    body = f"<ol>{''.join(items)}</ol>" if items else f"<p>{escape(t('results.none'))}</p>"
    if len(refs) > MAX_LISTED:
        more = t("results.groups.more", count=t.number(len(refs) - MAX_LISTED))
        body += f'<p class="note">{escape(more)}</p>'
    return f"<section><h2>{escape(t(msgid))}</h2>{body}</section>"


def _groups(t: Translator, groups: Mapping[str, Any], texts: Mapping[str, str], reason: str) -> str:
    heading = f"<h2>{escape(t('report.groups'))}</h2>"
    if groups["groups_reason"] is not None:
        line = t("results.groups.none", reason=reason, clustered=t.number(groups["clustered"]))
        return f"<section>{heading}<p>{escape(line)}</p></section>"
    shown = [g for g in groups["groups"] if not g.get("suppressed")]
    biggest = max((g["size"] for g in shown), default=1)
    rows = []
    for i, g in enumerate(shown):
        width = g["size"] / biggest * (BAR_WIDTH - 80)
        colour = GROUP_COLOURS[g["id"] % len(GROUP_COLOURS)]
        rows.append(
            f'<text x="0" y="{i * 24 + 16}">{_name(g["id"])}</text>'
            f'<rect x="24" y="{i * 24 + 4}" width="{width:.1f}" height="16" fill="{colour}"/>'
            f'<text x="{width + 30:.1f}" y="{i * 24 + 16}">{g["size"]}</text>'
        )
    chart = (
        f'<svg viewBox="0 0 {BAR_WIDTH} {len(shown) * 24 + 4}" width="{BAR_WIDTH}" '
        f'height="{len(shown) * 24 + 4}" font-size="12" role="img">{"".join(rows)}</svg>'
    )
    count, clustered = t.number(len(groups["groups"])), t.number(groups["clustered"])
    parts = [
        heading,
        f"<p>{escape(t('results.groups.heading', count=count, clustered=clustered))}</p>",
        f"<figure>{chart}</figure>",
    ]
    for g in groups["groups"]:
        name = _name(g["id"])
        if g.get("suppressed"):
            line = t("results.groups.suppressed", name=name, minimum=g["fewer_than"])
            parts.append(f'<p class="note">{escape(line)}</p>')
            continue
        parts.append(
            f"<h3>{escape(t('results.groups.group', name=name, size=t.number(g['size'])))}</h3>"
        )
        items = []
        for s in g["representative"]:
            msgid = (
                "results.groups.agreed"
                if s["repful_for"] == "agree"
                else "results.groups.disagreed"
            )
            share = s["n_success"] / max(s["n_trials"], 1)
            line = t(
                msgid,
                ref=s["ref"],
                text=texts.get(s["ref"], ""),
                share=t.percent(share),
                count=t.number(s["n_success"]),
                seen=t.number(s["n_trials"]),
            )
            items.append(f"<li>{escape(line)}</li>")
        parts.append(f"<ul>{''.join(items)}</ul>")
    return f"<section>{''.join(parts)}</section>"


def _name(index: int) -> str:
    return chr(ord("A") + index) if index < 26 else str(index + 1)


def report_page(
    results: Mapping[str, Any],
    groups: Mapping[str, Any],
    t: Translator,
    *,
    no_groups_reason: str,
    lines: Sequence[str] = (),
) -> str:
    """The page for `results` (`bots.results.Results.as_dict()`) and `groups` (a snapshot's
    payload); `no_groups_reason` says why there are none, if so; `lines` are the trust and
    weighting sentences, already in the organiser's language."""
    by_ref = {p["ref"]: p for p in results["proposals"]}
    texts = {ref: " ".join(p["text"].split()) for ref, p in by_ref.items()}
    legend = "".join(
        f'<span><i style="background:{COLOURS[key]}"></i>{escape(t(msgid))}</span>'
        for key, msgid in _KEYS.items()
    )
    totals = t(
        "report.totals",
        # Those who consented, or those who voted when more: an imported conversation has no
        # consents, and its voters are its participants.
        participants=t.number(max(results["participants"], groups.get("participants", 0))),
        votes=t.number(results["votes"]),
        proposals=t.number(len(results["proposals"])),
    )
    sections = [
        _list(t, "results.section.consensus", results["consensus"], by_ref, "agree"),
        _list(t, "results.section.controversies", results["controversies"], by_ref, "agree"),
        _list(t, "results.section.rejected", results["rejected"], by_ref, "disagree"),
        _groups(t, groups, texts, no_groups_reason),
    ]
    notes = "".join(f'<p class="note">{escape(line)}</p>' for line in lines)
    title = t("report.title", question=results["question"])
    generated = t("report.generated", at=results["generated_at"])
    return (
        f'<!DOCTYPE html><html lang="{escape(t.locale)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1>"
        f'<p class="meta">{escape(results["slug"])} · {escape(generated)}</p>'
        f"<p>{escape(totals)}</p>"
        f'<p class="legend">{legend}</p>'
        f'<p class="note">{escape(t("report.intervals"))}</p>{notes}</header>'
        f"{''.join(sections)}</body></html>\n"
    )
