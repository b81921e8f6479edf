"""Telegram: python-telegram-bot as the Bot API client and update parser, our FastAPI webhook.

Also an aiogram 3 `Router` (adapters/telegram/aiogram.py) for teams who run consultations
inside an existing aiogram bot; both share the parsing and rendering here.
"""

import os

# Opt in to PTB 23's time periods as timedelta (RetryAfter.retry_after, ...), so that reading
# them is not a deprecated use today and does not change meaning on the next major release.
os.environ.setdefault("PTB_TIMEDELTA", "true")
