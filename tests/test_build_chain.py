"""build-dataset is a one-way chain: no module imports one above it, none imports a private name.

A static check (an AST walk over every import, including those inside functions),
so an upward import hidden in a function body is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

# Also run under the second supported Python in CI (.ci/run: -m second_python).
pytestmark = pytest.mark.second_python

PACKAGE = Path(__file__).resolve().parent.parent / "dataset_builder"

#: Bottom first: a module may import only modules listed before it.
ORDER = [
    "errors", "clitools", "system_check", "protocol", "fetch", "archive", "sources", "stages", "decode_pool",
    "outputs", "launcher", "build", "beam_io", "beam_plan", "beam_transforms", "beam_pipeline", "dask_runner",
    "cli",
    "alignments", "extract",
]


def imported(source: str) -> list[tuple[str, list[str], int]]:
    """``(dataset_builder submodule, names imported from it, line)`` for every import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "dataset_builder" and len(parts) > 1:
                    found.append((parts[1], [], node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "dataset_builder":
                continue
            if len(parts) > 1:
                found.append((parts[1], [a.name for a in node.names], node.lineno))
            else:  # from dataset_builder import x, y: each name is a submodule
                found += [(a.name, [], node.lineno) for a in node.names]
    return found


def violations(module: str, source: str) -> list[str]:
    """Upward imports and private-name imports of ``module`` (a name in :data:`ORDER`)."""
    problems = []
    rank = ORDER.index(module)
    for target, names, line in imported(source):
        if target in ORDER and ORDER.index(target) >= rank and target != module:
            problems.append(f"{module}.py:{line} imports {target}, which is above it")
        if target in ("synth", *OUTSIDE - {"__init__"}):
            problems.append(f"{module}.py:{line} imports dataset_builder.{target}")
        for name in names:
            if name.startswith("_") and target != module:
                problems.append(f"{module}.py:{line} imports the private name {target}.{name}")
    return problems


@pytest.mark.parametrize("module", ORDER)
def test_no_module_imports_one_above_it_or_a_private_name(module):
    assert violations(module, (PACKAGE / f"{module}.py").read_text(encoding="utf-8")) == []


#: Modules of the package outside the build chain; the chain never imports them.
OUTSIDE = {"__init__", "demo"}


def test_every_build_module_has_a_place_in_the_order():
    present = {p.stem for p in PACKAGE.glob("*.py")} - OUTSIDE
    assert present == set(ORDER)


def test_the_check_sees_an_upward_import_inside_a_function():
    source = "def f():\n    from dataset_builder.cli import build_parser\n"
    assert violations("launcher", source) == ["launcher.py:2 imports cli, which is above it"]
    assert violations("build", "from dataset_builder import beam_pipeline\n") == [
        "build.py:1 imports beam_pipeline, which is above it"]
    assert violations("cli", "from dataset_builder.launcher import _private\n") == [
        "cli.py:1 imports the private name launcher._private"]
