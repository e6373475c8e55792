"""Shared pytest fixtures: each area keeps its fixtures in a module of its own."""

pytest_plugins = ["tests.fixtures_corpus", "tests.fixtures_model"]
