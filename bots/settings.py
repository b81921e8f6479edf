"""Configuration from `CONSULT_*` environment variables (also read from `.env`)."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where data lives and the secret that keys participants' pseudonyms.

    Without `CONSULT_DATABASE_URL`, consultations live in an SQLite file in the data directory
    (`./data` unless `CONSULT_DATA_DIR` says otherwise), created on first run. Without
    `CONSULT_SECRET_KEY`, a random key is generated once and kept in the data directory: losing
    it would turn every returning participant into a new one. Tokens and secrets are
    `SecretStr`, so a repr, a log line or a traceback shows them as `**********`.
    """

    model_config = SettingsConfigDict(env_prefix="CONSULT_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = Field(default=None, repr=False)  # it may hold a password
    secret_key: SecretStr | None = None

    # Telegram: enabled by the bot token (from @BotFather).
    telegram_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    telegram_bot_username: str | None = None
    # Telegram's pacing (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this)
    telegram_messages_per_second: float = 30.0
    telegram_chat_messages_per_second: float = 1.0
    telegram_group_messages_per_minute: float = 20.0

    # WhatsApp Cloud API: enabled by the access token.
    whatsapp_token: SecretStr | None = None
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_phone_number: str | None = None
    whatsapp_api_url: str = "https://graph.facebook.com/v21.0"
    # A Cloud API number's default throughput.
    whatsapp_messages_per_second: float = 80.0

    # Slack: a bot token and signing secret for one workspace, or OAuth for many.
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    # A bearer token the organiser API takes as an administrator of every consultation, from
    # before organiser accounts; organisers' own tokens come from `consult organiser token`.
    organiser_token: SecretStr | None = None
    # Where people reach this server (behind a proxy: its public address), for the links the
    # server or the CLI hands out, such as an organiser's one-time sign-in link to the console.
    public_url: str = "http://localhost:8000"
    # How long a console sign-in lasts before the organiser signs in again.
    console_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)

    # Webhook bodies larger than this are refused with 413.
    webhook_max_body_bytes: int = 256 * 1024
    # An event not handled within this many seconds answers 503, and the platform retries.
    webhook_handling_timeout: float = 10.0
    # Replies owed to participants (core.outbox): each server process says it is alive this
    # often, and the replies owed by a process silent for `delivery_stale_seconds` are sent
    # by another (a killed worker's participants get their question again).
    delivery_beat_seconds: float = Field(default=2.0, gt=0)
    delivery_stale_seconds: float = Field(default=10.0, gt=0)
    # How often a server (or `consult deliver`) looks for authors' notices to send (core.notices).
    notices_every_seconds: float = Field(default=2.0, gt=0)
    # The broadcasts' scheduler (bots.scheduler): how often the process holding its lease
    # plans the due broadcasts and reminders, and how long the lease lasts unrenewed (another
    # process takes over after it when the holder dies).
    scheduler_every_seconds: float = Field(default=10.0, gt=0)
    scheduler_lease_seconds: float = Field(default=30.0, gt=0)
    # How often an open consultation's results are computed again into a stored snapshot
    # (the scheduler's job; the dashboard and the API read the latest, never compute).
    results_every_minutes: float = Field(default=5.0, gt=0)
    # Broadcasts' pacing (bots.broadcast_worker), per bot token, phone number and workspace,
    # shared by the delivery processes running: Telegram about 30 messages a second per bot
    # (1,000 with allow_paid_broadcast, charged in Stars); WhatsApp the number's throughput
    # (CONSULT_WHATSAPP_MESSAGES_PER_SECOND) and the business's messaging tier (unique people
    # reached outside the 24-hour window per 24 hours); Slack about one message a second per
    # conversation, within the workspace's overall rate.
    telegram_broadcast_per_second: float = Field(default=30.0, gt=0)
    telegram_paid_broadcast_per_second: float = Field(default=1000.0, gt=0)
    whatsapp_tier: Literal["250", "2000", "10000", "100000", "unlimited"] = "250"
    slack_messages_per_second: float = Field(default=20.0, gt=0)
    slack_conversation_messages_per_second: float = Field(default=1.0, gt=0)
    broadcasts_every_seconds: float = Field(default=2.0, gt=0)

    @field_validator("delivery_stale_seconds")
    @classmethod
    def _stale_after_beats(cls, stale: float, info: ValidationInfo) -> float:
        beat = info.data.get("delivery_beat_seconds")
        if beat is not None and stale < 3 * beat:  # a busy worker may miss a beat or two
            raise ValueError("must be at least three times CONSULT_DELIVERY_BEAT_SECONDS")
        return stale

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / 'consult.sqlite3').resolve()}"

    def resolved_secret(self) -> bytes:
        """The pseudonym key: `CONSULT_SECRET_KEY`, else the data directory's key file.

        The first caller creates the file; any number of processes may race to do it and all
        read the same key, never a partial one.
        """
        if self.secret_key:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            _create_key_file(path)
        return path.read_text().strip().encode()


def _create_key_file(path: Path) -> None:
    """Write a new random key at `path` unless another process has: written whole to a private
    temporary file, then linked into place, since a link fails if the name exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret.key.")  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as key_file:
            key_file.write(secrets.token_hex(32))
            key_file.flush()
            os.fsync(key_file.fileno())
        with contextlib.suppress(FileExistsError):  # another process won: its key stands
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
