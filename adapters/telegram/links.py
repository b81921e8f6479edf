"""Telegram deep links: `https://t.me/<bot>?start=<payload>` makes Telegram send the bot
`/start <payload>` (payloads: adapters/links.py)."""

from __future__ import annotations


def telegram_link(bot_username: str, payload: str) -> str:
    return f"https://t.me/{bot_username.lstrip('@')}?start={payload}"
