"""Fake platform servers of ours (real HTTP on localhost), for tests and benchmarks."""
