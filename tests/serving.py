"""Running `consult serve` for end-to-end tests: a real process on a free local port."""

from bench.processes import ROOT, consult_server, free_port

__all__ = ["ROOT", "consult_server", "free_port"]
