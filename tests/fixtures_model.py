"""Fixtures for embedding-model tests (a tiny model trained in seconds)."""
