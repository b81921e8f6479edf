"""The terminal channel: a participant chatting on stdin/stdout, one line per answer."""

from adapters.terminal.render import render_reply
from adapters.terminal.session import TerminalSession

__all__ = ["TerminalSession", "render_reply"]
