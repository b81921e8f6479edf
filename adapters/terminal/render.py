"""Replies as terminal text: a terminal has no buttons, so a pick becomes a numbered list."""

from __future__ import annotations

from core.messages import Reply


def render_reply(reply: Reply) -> str:
    """The text of `reply`, followed by its options numbered from 1 (answer with the number)."""
    lines = [reply.text]
    if reply.pick is not None:
        lines.append("")
        for number, option in enumerate(reply.pick.options, start=1):
            lines.append(f"  {number}. {option.label}")
            if option.description:
                lines.append(f"     {option.description}")
    return "\n".join(lines)
