"""``process_results`` hooks for pivottrace's lm-eval tasks, one per verifier.

The task YAML names ``utils.process_results_<verifier>`` (e.g.
``process_results_modchain``); the hook is made on attribute access for every
name registered in :data:`pivottrace.data.verifiers.VERIFIERS`, so a newly registered
verifier needs no change here. lm-eval loads this file by path from the folder
of the rendered task (a copy of this file is written there), and looks the hook
up with ``getattr``, which reaches the module-level ``__getattr__`` below.

A hook scores one document: ``results[0]`` is the generated completion (the
text after the prompt, stop sequences removed) and ``doc["answer"]`` the gold
answer; it returns ``{"acc": 1.0 | 0.0}``.
"""

from __future__ import annotations

from collections.abc import Callable

from pivottrace.data.verifiers import VERIFIERS, get_verifier

METRIC = "acc"
PREFIX = "process_results_"


def score(doc: dict, results: list[str], verifier: str) -> dict[str, float]:
    """``{"acc": 1.0}`` when ``verifier`` accepts the completion against ``doc["answer"]``."""
    return {METRIC: float(get_verifier(verifier).verify(results[0], str(doc["answer"])))}


def make_process_results(verifier: str) -> Callable[[dict, list[str]], dict[str, float]]:
    """The lm-eval ``process_results(doc, results)`` hook for ``verifier``."""
    get_verifier(verifier)  # unknown names fail here, not per document

    def process_results(doc: dict, results: list[str]) -> dict[str, float]:
        return score(doc, results, verifier)

    process_results.__name__ = process_results.__qualname__ = PREFIX + verifier
    return process_results


def __getattr__(name: str):
    if name.startswith(PREFIX) and name[len(PREFIX):] in VERIFIERS:
        return make_process_results(name[len(PREFIX):])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}; "
                         f"hooks exist for verifiers {sorted(VERIFIERS)}")
