"""The package graph of docs/ARCHITECTURE.md, checked statically on every import of the code.

An AST walk over every ``.py`` file of every package finds every ``import`` and
``from ... import`` (also those inside functions, which a run-time look at
``sys.modules`` cannot see, and ``importlib.import_module("...")`` with a literal
name), resolves relative imports, and checks each project import against the
"imports" column of the architecture's package table. The order that table must
state is written here too, so neither the code nor the document can drift alone.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"

PACKAGES = ("protos", "corpus", "embedding_model", "dataset_builder", "selection", "eval")

# protos -> corpus -> embedding_model -> dataset_builder; selection and eval use protos only.
EXPECTED_IMPORTS = {
    "protos": set(),
    "corpus": {"protos"},
    "embedding_model": {"protos", "corpus"},
    "dataset_builder": {"protos", "corpus", "embedding_model"},
    "selection": {"protos"},
    "eval": {"protos"},
}

TENSORFLOW = {"tensorflow", "keras", "tensorflow_io", "tf_keras", "tflite_runtime"}
# The submission container has no TensorFlow; corpus is the TensorFlow-free audio base.
NO_TENSORFLOW = ("protos", "corpus", "selection", "eval")

# Edges the code still has and the architecture does not allow, each with the issue
# that removes it: (importing file, imported package).
# None today (issue 14 removed the last, dataset_builder/demo.py -> selection).
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class ImportEdge:
    """One import statement: the file (relative to the tree), its line, the module it names."""

    path: str
    line: int
    module: str

    @property
    def top(self) -> str:
        return self.module.split(".")[0]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imports_of(path: Path, root: Path) -> list[ImportEdge]:
    """Every module ``path`` imports, wherever the statement is (module level, functions, classes)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    importer = _module_name(path, root)
    is_package = path.name == "__init__.py"
    rel = path.relative_to(root).as_posix()
    edges = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            edges += [ImportEdge(rel, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module
            if node.level:
                module = _resolve_relative(importer, is_package, node.level, node.module)
            if module:
                edges.append(ImportEdge(rel, node.lineno, module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                edges.append(ImportEdge(rel, node.lineno, node.args[0].value))
    return edges


def graph_violations(root: Path, allowed: dict[str, set[str]], no_tensorflow: tuple[str, ...],
                     known: set[tuple[str, str]] = frozenset()) -> list[str]:
    """Each import under ``root`` that breaks the graph, as ``file:line: message``.

    Args:
        root: the directory holding the packages.
        allowed: package -> the project packages it may import (itself always may).
        no_tensorflow: packages that must not import TensorFlow (or Keras, tensorflow-io).
        known: (file, package) edges to tolerate.
    """
    problems = []
    for package, may in allowed.items():
        for path in sorted((root / package).rglob("*.py")):
            for edge in imports_of(path, root):
                target = edge.top
                where = f"{edge.path}:{edge.line}"
                if target in allowed and target != package and target not in may:
                    if (edge.path, target) in known:
                        continue
                    direction = "upward or sideways"
                    problems.append(f"{where}: {package} imports {edge.module} ({direction}); "
                                    f"{package} may import only {', '.join(sorted(may)) or 'no project package'}")
                if package in no_tensorflow and target in TENSORFLOW:
                    problems.append(f"{where}: {package} imports {edge.module}; {package} must not import TensorFlow")
    return problems


def architecture_imports(text: str) -> dict[str, set[str]]:
    """package -> project packages named in the "imports" column of the architecture's package table."""
    table = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3:
            continue
        name = re.fullmatch(r"`([a-z_]+)`", cells[0])
        if name and name.group(1) in PACKAGES:
            named = {m.split(".")[0] for m in re.findall(r"`([a-z_][a-z_.]*)`", cells[2])}
            table[name.group(1)] = (named & set(PACKAGES)) - {name.group(1)}
    return table


def test_architecture_states_the_package_order():
    assert architecture_imports(ARCHITECTURE.read_text(encoding="utf-8")) == EXPECTED_IMPORTS


def test_every_import_follows_the_package_order():
    problems = graph_violations(ROOT, EXPECTED_IMPORTS, NO_TENSORFLOW, KNOWN_EXCEPTIONS)
    assert not problems, "\n".join(problems)


def test_known_exceptions_are_still_needed():
    # An exception the code no longer needs must be removed, so it cannot hide a new edge.
    for path, target in KNOWN_EXCEPTIONS:
        assert any(e.top == target for e in imports_of(ROOT / path, ROOT)), (path, target)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


CLEAN_TREE = {
    "protos/__init__.py": "import json\n",
    "corpus/__init__.py": "from protos import x\n",
    "corpus/sub/mod.py": "from .. import y\nfrom ..other import z\n",
    "embedding_model/__init__.py": "import corpus.sub.mod\n\ndef load():\n    import tensorflow\n",
    "dataset_builder/cli.py": "from embedding_model import load\nimport importlib\nimportlib.import_module('corpus.sub')\n",
    "selection/main.py": "import protos\nimport numpy\n",
    "eval/__init__.py": "",
}


def test_checker_passes_a_tree_that_follows_the_order(tmp_path):
    _write(tmp_path, CLEAN_TREE)
    assert graph_violations(tmp_path, EXPECTED_IMPORTS, NO_TENSORFLOW) == []


@pytest.mark.parametrize(
    "name, text, complaint",
    [
        # Upward, hidden inside a function: invisible to a run-time sys.modules check.
        ("corpus/sub/mod.py", "def f():\n    from embedding_model.plan import make_plan\n",
         "corpus/sub/mod.py:2: corpus imports embedding_model.plan (upward or sideways)"),
        ("protos/io.py", "import corpus\n", "protos/io.py:1: protos imports corpus"),
        ("selection/algo.py", "class A:\n    def m(self):\n        import dataset_builder.demo\n",
         "selection/algo.py:3: selection imports dataset_builder.demo"),
        # Sideways: the builder may not use selection.
        ("dataset_builder/demo.py", "from selection.implementations import available\n",
         "dataset_builder/demo.py:1: dataset_builder imports selection.implementations"),
        ("embedding_model/x.py", "import importlib\nimportlib.import_module('dataset_builder.cli')\n",
         "embedding_model/x.py:2: embedding_model imports dataset_builder.cli"),
        ("eval/report.py", "def plot():\n    import keras\n", "eval/report.py:2: eval imports keras; eval must not import"),
        ("protos/samples.py", "from tensorflow import io\n", "protos imports tensorflow"),
    ],
)
def test_checker_fails_when_a_forbidden_import_is_added(tmp_path, name, text, complaint):
    _write(tmp_path, {**CLEAN_TREE, name: text})
    problems = graph_violations(tmp_path, EXPECTED_IMPORTS, NO_TENSORFLOW)
    assert len(problems) == 1 and complaint in problems[0], problems


def test_relative_imports_are_resolved_to_their_package(tmp_path):
    _write(tmp_path, {"corpus/sub/mod.py": "from .. import a\nfrom ..b import c\nfrom . import d\n",
                      "corpus/__init__.py": "from .words import w\n"})
    assert [e.module for e in imports_of(tmp_path / "corpus/sub/mod.py", tmp_path)] == [
        "corpus", "corpus.b", "corpus.sub"]
    assert [e.module for e in imports_of(tmp_path / "corpus/__init__.py", tmp_path)] == ["corpus.words"]
