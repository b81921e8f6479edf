"""The App Home tab: the open consultations a participant can take part in, their progress in
each, and a "Participate" button (what to show comes from `core.participation`)."""

from __future__ import annotations

from typing import Any

from adapters.slack.render import Block, participate_button, plain, shorten, text_blocks
from core.i18n import Translator
from core.participation import ConsultationEntry

# 1 header + (1 + 4 blocks) per consultation stays within a view's 100 blocks.
MAX_ENTRIES = 24


def home_view(t: Translator, entries: list[ConsultationEntry]) -> dict[str, Any]:
    """The App Home view for `entries`, in `t`'s language; the first MAX_ENTRIES only."""
    blocks: list[Block] = [{"type": "header", "text": plain(shorten(t("slack.home.title"), 150))}]
    if not entries:
        blocks.append({"type": "section", "text": plain(t("slack.home.none"))})
    for entry in entries[:MAX_ENTRIES]:
        blocks.append({"type": "divider"})
        blocks.extend(text_blocks(entry.question)[:1])
        progress = t("slack.home.progress", voted=entry.votes_given, total=entry.proposals)
        blocks.append({"type": "context", "elements": [plain(progress)]})
        blocks.append(
            {
                "type": "actions",
                "block_id": f"home:{entry.slug}",
                "elements": [participate_button(t, entry.slug)],
            }
        )
    return {"type": "home", "blocks": blocks}
