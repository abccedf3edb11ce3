"""The annotation oracle: the only door to gold answers of the pool, and its ledger.

Every distinct id revealed counts against ``max_queries``; asking again for an
id already revealed is free. A call that would go past the budget raises
:class:`BudgetExceededError` before revealing anything. The ledger records
which ids were annotated (DESIGN.md section 3, docs/INTERFACES.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from pivottrace.core.io import DataError, read_jsonl, write_json


class BudgetExceededError(RuntimeError):
    """A query would annotate more distinct prompts than ``max_queries`` allows."""


class UnknownIdError(KeyError):
    """An id that the gold file does not hold."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class AnnotationOracle:
    """Reveals gold answers one counted query at a time.

    Args:
        gold_path: ``data/pool_gold.jsonl`` with ``id`` (str) and ``answer`` (str) per row.
        max_queries: the most distinct ids that may be annotated (>= 0).
        verifier, modulus: when given, every gold answer must parse under this
            verifier (:func:`pivottrace.data.splits.gold_problem`), else DataError naming
            file, row and field.

    Examples:
        >>> oracle = AnnotationOracle(gold_path, max_queries=2)  # doctest: +SKIP
        >>> oracle.annotate(["p1"])                              # doctest: +SKIP
        {'p1': '7'}
    """

    __slots__ = ("_answers", "_annotated", "_gold_path", "_max_queries")

    def __init__(self, gold_path: str | os.PathLike, max_queries: int, *,
                 verifier: str | None = None, modulus: int | None = None) -> None:
        if isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 0:
            raise ValueError(f"max_queries must be an int >= 0, got {max_queries!r}")
        rows = read_jsonl(gold_path, required={"id": str, "answer": str})
        if verifier is not None:
            # every gold answer must be usable as a reward target (nothing is revealed)
            from pivottrace.data.splits import check_answers

            check_answers(gold_path, rows, verifier, modulus)
        self._gold_path = str(gold_path)
        self._max_queries = max_queries
        self._answers = {r["id"]: r["answer"] for r in rows}
        self._annotated: set[str] = set()

    @property
    def max_queries(self) -> int:
        return self._max_queries

    @property
    def n_annotated(self) -> int:
        return len(self._annotated)

    @property
    def remaining(self) -> int:
        return self._max_queries - len(self._annotated)

    def annotate(self, ids: Iterable[str]) -> dict[str, str]:
        """Gold answers for ``ids``; each id not annotated before costs one query.

        Args:
            ids: pool ids (an iterable of str; repeats are fine).
        Returns:
            ``{id: answer}`` in the order the ids were first given.
        Raises:
            UnknownIdError: an id absent from the gold file (nothing revealed).
            BudgetExceededError: the new ids would exceed ``max_queries`` (nothing revealed).
        """
        if isinstance(ids, str):
            raise TypeError("annotate() takes an iterable of ids, not a single string")
        wanted = list(dict.fromkeys(ids))
        for pid in wanted:
            if not isinstance(pid, str):
                raise TypeError(f"ids must be strings, got {type(pid).__name__} {pid!r}")
            if pid not in self._answers:
                raise UnknownIdError(f"id {pid!r} is not in gold file {self._gold_path}")
        new = [pid for pid in wanted if pid not in self._annotated]
        if len(self._annotated) + len(new) > self._max_queries:
            raise BudgetExceededError(
                f"annotating {len(new)} new id(s) would make {len(self._annotated) + len(new)}"
                f" > max_queries={self._max_queries} ({len(self._annotated)} already annotated);"
                " nothing was revealed")
        self._annotated.update(new)
        return {pid: self._answers[pid] for pid in wanted}

    def ledger(self) -> dict:
        """``{"annotated_ids": sorted ids, "n_annotated": n, "max_queries": m}``."""
        return {"annotated_ids": sorted(self._annotated), "n_annotated": len(self._annotated),
                "max_queries": self._max_queries}

    def write_ledger(self, path: str | os.PathLike) -> None:
        """Write :meth:`ledger` to ``path`` atomically (ledger.json of the run)."""
        write_json(path, self.ledger())

    def __repr__(self) -> str:
        return (f"AnnotationOracle(gold_path={self._gold_path!r}, n_gold={len(self._answers)},"
                f" n_annotated={len(self._annotated)}, max_queries={self._max_queries})")


__all__ = ["AnnotationOracle", "BudgetExceededError", "DataError", "UnknownIdError"]
