"""One style for every paper figure: method names, colours, markers, theme and saving.

Every figure is written as PNG (200 dpi), PDF (no creation date, so reruns are
byte-stable where matplotlib allows) and the CSV it was drawn from, each
atomically.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pivottrace.core.io import atomic_write

METHOD_LABELS = {
    "base": "Base (untrained)",
    "full": "Full supervision",
    "random": "Random",
    "entropy": "Entropy",
    "random_semi": "Random + majority vote",
    "entropy_semi": "Entropy + majority vote",
    "unsupervised": "Unsupervised (TTRL)",
    "self_certainty": "Self-certainty (Intuitor)",
    "oracle_learnability": "Oracle learnability (labels)",
    "pivottrace": "PivotTrace",
    "pivottrace_two_way": "PivotTrace two-way",
    "triage_entropy": "Triage by entropy",
    "triage_lexical": "Triage by lexical pivots",
}

_PALETTE = {  # colorblind-safe (seaborn 'colorblind')
    "base": "#949494", "full": "#000000", "random": "#0173b2", "entropy": "#de8f05",
    "random_semi": "#5d8cb8", "entropy_semi": "#b5791a",
    "unsupervised": "#56b4e9", "self_certainty": "#ca9161", "oracle_learnability": "#fbafe4",
    "pivottrace": "#d55e00", "pivottrace_two_way": "#cc78bc", "triage_entropy": "#029e73",
    "triage_lexical": "#ece133",
}
_MARKERS = {"base": "X", "full": "s", "random": "o", "entropy": "^", "random_semi": "8",
            "entropy_semi": "*", "unsupervised": "v",
            "self_certainty": "<", "oracle_learnability": "P", "pivottrace": "D",
            "pivottrace_two_way": "d", "triage_entropy": ">", "triage_lexical": "h"}

ROUTE_COLORS = {"self": "#029e73", "annotate": "#d55e00", "defer": "#949494"}
"""Triage routes: confident (self), pivotal (annotate), beyond reach (defer)."""


def label(method: str) -> str:
    """Display name of a method (the raw name for unknown ones)."""
    return METHOD_LABELS.get(method, method)


def color(method: str) -> str:
    return _PALETTE.get(method, "#555555")


def marker(method: str) -> str:
    return _MARKERS.get(method, "o")


def setup():
    """Non-interactive backend and the shared seaborn theme; returns ``pyplot``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt


def save_figure(fig, stem: str | Path, data: pd.DataFrame) -> list[Path]:
    """Write ``stem``.png, .pdf and .csv (the plotted data) atomically; close the figure."""
    import matplotlib.pyplot as plt

    stem = Path(stem)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf"), stem.with_suffix(".csv")]
    with atomic_write(paths[0], "wb") as fh:
        fig.savefig(fh, format="png", dpi=200)
    with atomic_write(paths[1], "wb") as fh:
        fig.savefig(fh, format="pdf", metadata={"CreationDate": None})
    plt.close(fig)
    with atomic_write(paths[2]) as fh:
        data.to_csv(fh, index=False, lineterminator="\n")
    return paths
