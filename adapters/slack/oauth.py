"""Multi-workspace installs: slack_sdk's async SQLAlchemy stores over OUR database engine.

Their tables (slack_installations, slack_bots, slack_oauth_states) are created by the stores
themselves when the channel opens with OAuth, not by an Alembic migration: the migrations must
describe exactly `core.models` (tests/core/test_storage.py compares them), and these tables
belong to the Slack adapter only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

BOT_SCOPES = ("chat:write", "commands", "im:write", "im:history", "users:read")
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
STATE_SECONDS = 600


@dataclass(frozen=True)
class OAuthApp:
    """The Slack app's OAuth credentials (from the app's Basic Information page)."""

    client_id: str
    client_secret: str = field(repr=False)


async def oauth_settings(app: OAuthApp, engine: AsyncEngine) -> AsyncOAuthSettings:
    """Bolt's OAuth settings: install at /slack/install, installations kept in our database
    (tables created if missing)."""
    installations = AsyncSQLAlchemyInstallationStore(app.client_id, engine)
    states = AsyncSQLAlchemyOAuthStateStore(STATE_SECONDS, engine)
    for store in (installations, states):
        try:
            await store.create_tables()  # type: ignore[no-untyped-call]
        except SQLAlchemyError:
            # Another worker created them between our check and our CREATE: look again.
            await store.create_tables()  # type: ignore[no-untyped-call]
    return AsyncOAuthSettings(
        client_id=app.client_id,
        client_secret=app.client_secret,
        scopes=list(BOT_SCOPES),
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        installation_store=installations,
        state_store=states,
    )
