"""The Slack channel is built from CONSULT_SLACK_* settings, and the organiser's command."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.slack import SlackChannel
from bots.channels import enabled_channels
from bots.cli import main
from bots.errors import ChannelNotConfigured
from bots.settings import Settings
from bots.slack import slack_channel


def settings(**values: str) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_a_bot_token_or_client_id_enables_slack() -> None:
    assert not any(isinstance(c, SlackChannel) for c in enabled_channels(settings()))
    one = enabled_channels(settings(slack_bot_token="xoxb-1", slack_signing_secret="s"))
    assert [c.name for c in one if isinstance(c, SlackChannel)] == ["slack"]
    many = slack_channel(
        settings(slack_client_id="1.2", slack_client_secret="c", slack_signing_secret="s")
    )
    paths = {getattr(route, "path", "") for route in many.router.routes}
    assert paths == {"/webhooks/slack/events", "/slack/install", "/slack/oauth_redirect"}


def test_missing_secrets_are_named() -> None:
    with pytest.raises(ChannelNotConfigured) as problem:
        slack_channel(settings(slack_bot_token="xoxb-1"))
    assert problem.value.msgid == "cli.slack_no_signing_secret"
    with pytest.raises(ChannelNotConfigured) as problem:
        slack_channel(settings(slack_client_id="1.2", slack_signing_secret="s"))
    assert problem.value.msgid == "cli.slack_no_client_secret"


def test_posting_an_unknown_consultation_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONSULT_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    monkeypatch.setenv("CONSULT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CONSULT_SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("CONSULT_SLACK_SIGNING_SECRET", "s")
    monkeypatch.setenv("CONSULT_SLACK_API_URL", "http://127.0.0.1:9/api/")
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    assert main(["slack", "post", "C0GENERAL", "nowhere"]) == 2
    assert 'there is no consultation "nowhere"' in capsys.readouterr().err
