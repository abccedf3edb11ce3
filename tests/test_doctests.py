"""Every docstring example in the package runs and gives what it shows."""

import doctest
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULES = sorted(
    ".".join(p.relative_to(REPO).with_suffix("").parts)
    for pkg in ("pivottrace", "baselines", "analysis") for p in (REPO / pkg).rglob("*.py")
    if p.name != "__init__.py" and "lmeval_tasks" not in p.parts and p.name != "bare_grpo.py")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
