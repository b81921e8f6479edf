"""Fake platform servers that real SDKs talk to in tests and benchmarks."""
