"""Baseline selection policies (DataComp-style): each writes a plan, nothing else.

The registry of all methods, PivotTrace included, and the one argument check
live in :mod:`pivottrace.method.selection`.
"""

from baselines.policies import (
    entropy_selection,
    entropy_semi,
    full_supervision,
    oracle_learnability_selection,
    random_selection,
    random_semi,
    unsupervised,
    unsupervised_self_certainty,
)

__all__ = ["entropy_selection", "entropy_semi", "full_supervision", "oracle_learnability_selection",
           "random_selection", "random_semi", "unsupervised", "unsupervised_self_certainty"]
