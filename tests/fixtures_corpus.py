"""Fixtures for corpus tests (a tiny synthesized MSWC-layout corpus)."""
