"""Registry of selection algorithms: ``name -> "module:function"``, imported on use.

Every algorithm is a function ``(pool: selection.pool.Pool) -> dict[str, list[str]]``
(see ``selection.selection.select`` for the contract). To add one, write the module
and add one line to ``ALGORITHMS``; to make it the default, change
``DEFAULT_ALGORITHM``.
"""

from __future__ import annotations

import importlib
from typing import Callable

ALGORITHMS: dict[str, str] = {
    "random": "selection.implementations.random_balanced:select",
    "crossval": "selection.implementations.crossval:select",
    "tuned": "selection.implementations.tuned:select",
}

#: Used when ``--algorithm`` is not given: typical-but-diverse picks with budgets tuned
#: by simulating DataPerf's protocol on the pool (see ``tuned.py`` and docs/SELECTION.md).
#: "random" and "crossval" (DataPerf's baselines) stay selectable.
DEFAULT_ALGORITHM = "tuned"


def available() -> list[str]:
    """Names accepted by :func:`get` (and by ``--algorithm``)."""
    return sorted(ALGORITHMS)


def get(name: str) -> Callable:
    """The selection function registered as ``name``.

    Raises:
        KeyError: no such algorithm (the message lists the available ones).
    """
    try:
        target = ALGORITHMS[name]
    except KeyError:
        raise KeyError(f"unknown selection algorithm {name!r}; available: "
                       f"{', '.join(available())}") from None
    module_name, function_name = target.split(":")
    return getattr(importlib.import_module(module_name), function_name)
