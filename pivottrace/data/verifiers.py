"""Answer verifiers by name: ``get_verifier(name)`` -> :class:`Verifier`.

Each verifier extracts a final answer from a completion and compares it with
a gold answer string. Names are config values (``task.verifier``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pivottrace.data import real
from pivottrace.testbed import modchain


@dataclass(frozen=True)
class Verifier:
    name: str
    extract: Callable[[str], str | None]
    verify: Callable[[str, str], bool]


VERIFIERS: dict[str, Verifier] = {
    "modchain": Verifier("modchain", modchain.extract_answer, modchain.verify),
    "gsm8k": Verifier("gsm8k", real.extract_gsm8k, real.verify_gsm8k),
    "math": Verifier("math", real.extract_math, real.verify_math),
}


def get_verifier(name: str) -> Verifier:
    """The verifier registered under ``name``; a clear error for an unknown one."""
    try:
        return VERIFIERS[name]
    except KeyError:
        raise ValueError(f"unknown verifier {name!r}; known: {sorted(VERIFIERS)}") from None
