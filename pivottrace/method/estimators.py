"""Label-free uncertainty estimators of one trace or one prompt's K traces (DESIGN.md section 2).

Besides attention pivot density (:mod:`pivottrace.method.pivots`): lexical
reflections, token entropy, self-certainty (Intuitor) and majority
disagreement. Pure functions; :mod:`pivottrace.method.scoring` applies them to
the pool's rollouts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch

from pivottrace.testbed import modchain

ESTIMATORS = ("pivot_density", "lexical_reflections", "mean_token_entropy",
              "neg_self_certainty", "majority_disagreement")
"""Label-free estimator columns of the scores table, each "higher = more uncertain"."""

#: Reflection words of the generic lexical counter (tasks other than modchain).
REFLECTION_WORDS = ("wait", "hmm", "however", "recheck", "re-check", "verify", "alternatively",
                    "mistake", "actually")


def lexical_counter(task_name: str | None):
    """``completion -> int`` reflection counter for a task (modchain, skillchain: its reflection word)."""
    if task_name is None or task_name in modchain.TESTBED_TASKS:
        return modchain.count_reflections

    def count(completion: str) -> int:
        words = completion.lower().replace(",", " ").replace(".", " ").split()
        return sum(words.count(w) for w in REFLECTION_WORDS)

    return count


def token_entropy_and_self_certainty(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token entropy H(p) and self-certainty KL(U || p) of raw logits, in nats.

    Args:
        logits: (..., V) raw next-token logits (temperature 1).
    Returns:
        ``(entropy, self_certainty)``, each of shape ``logits.shape[:-1]``, float32.
        ``self_certainty = -log V - mean_j log p_j`` (0 for a uniform p).

    Examples:
        >>> h, sc = token_entropy_and_self_certainty(torch.zeros(4))
        >>> round(float(h), 6) == round(math.log(4), 6), abs(float(sc)) < 1e-6
        (True, True)
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    v = logits.shape[-1]
    self_certainty = -math.log(v) - logp.mean(-1)
    return entropy, self_certainty


def majority_vote(answers: Sequence[str | None]) -> tuple[str | None, int]:
    """The most frequent parseable answer and its votes; ties to the smallest answer string.

    Examples:
        >>> majority_vote(["7", "3", "7", None])
        ('7', 2)
        >>> majority_vote(["9", "3"]), majority_vote([None])
        (('3', 1), (None, 0))
    """
    return top_answer(Counter(a for a in answers if a is not None))


def top_answer(counts: Counter) -> tuple[str | None, int]:
    """``(answer, votes)`` with the most votes in ``counts``, ties to the smallest answer string.

    The tie-break of the majority reward (:func:`pivottrace.rl.rewards.make_majority_reward`)
    and of :func:`majority_vote`.
    """
    if not counts:
        return None, 0
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def majority_disagreement(answers: Sequence[str | None]) -> float:
    """``1 - (votes of the most frequent answer) / K``; each None is its own one-vote answer.

    Examples:
        >>> majority_disagreement(["7", "7", "3", None])
        0.5
        >>> majority_disagreement([None, None, None, None])
        0.75
        >>> majority_disagreement(["1", "1"])
        0.0
    """
    k = len(answers)
    if k == 0:
        raise ValueError("need at least one answer")
    counts = Counter(a for a in answers if a is not None)
    top = max(counts.values(), default=0)
    return 1.0 - max(top, 1) / k  # all None: K singleton votes
