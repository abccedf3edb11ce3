"""Labeled splits (dev/test/test_hard) and the checks every task data directory must pass.

The files are those of docs/INTERFACES.md; the embedded testbed writes them with
:func:`pivottrace.testbed.data.make_modchain`, the real-data loaders with
:mod:`pivottrace.data.real` and :mod:`pivottrace.data.mathdata`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from pivottrace.core.io import DataError, jsonl_row_lines, read_jsonl, write_jsonl

LABELED_FIELDS = {"id": str, "prompt": str, "answer": str, "difficulty": int}


def write_task_files(out_dir: str | Path, pool: list[dict], labeled: Mapping[str, list[dict]],
                     sft: Iterable[dict] = ()) -> None:
    """Write a task's data files: the pool without answers plus ``pool_gold.jsonl`` (the
    oracle's), ``dev``/``test``/``test_hard`` (labeled rows as given) and ``sft.jsonl``."""
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "pool_gold.jsonl", [{"id": r["id"], "answer": r["answer"]} for r in pool])
    write_jsonl(out_dir / "pool.jsonl", [{k: r[k] for k in ("id", "prompt", "difficulty")} for r in pool])
    for name in ("dev", "test", "test_hard"):
        write_jsonl(out_dir / f"{name}.jsonl", labeled[name])
    write_jsonl(out_dir / "sft.jsonl", list(sft))


def gold_problem(answer: str, verifier: str | None, modulus: int | None = None) -> str | None:
    """Why ``verifier`` cannot use ``answer`` as a gold answer, or None when it can.

    ``modchain`` gold is a plain integer in ``[0, modulus)``; ``gsm8k`` a number;
    ``math`` must parse to a math object (math-verify). ``verifier=None`` only
    requires a non-empty string.
    """
    from pivottrace.data.real import GOLD_CHECKERS

    if not answer.strip():
        return "is empty"
    if verifier is None:
        return None
    if verifier == "modchain":
        text = answer.strip()
        if not text.isdigit():
            return f"the modchain verifier cannot parse the answer {answer!r} (expected an integer)"
        if modulus is not None and int(text) >= modulus:
            return f"answer {answer!r} is not below the modulus {modulus}"
        return None
    if verifier not in GOLD_CHECKERS:
        raise ValueError(f"unknown verifier {verifier!r}; known: {sorted(['modchain', *GOLD_CHECKERS])}")
    if GOLD_CHECKERS[verifier](answer) is None:
        return f"the {verifier} verifier cannot parse the answer {answer!r}"
    return None


def check_answers(path: str | Path, rows: list[dict], verifier: str | None,
                  modulus: int | None = None, field: str = "answer") -> None:
    """Every row's gold ``field`` must be usable by ``verifier`` (DataError naming file, row, field)."""
    lines = jsonl_row_lines(path)
    for row, line in zip(rows, lines):
        why = gold_problem(row[field], verifier, modulus)
        if why is not None:
            raise DataError(f"{path}: row {line}: field {field!r}: {why}")


def load_labeled(path: str | Path, verifier: str | None = None,
                 modulus: int | None = None) -> list[dict]:
    """Rows of a labeled split (dev/test/test_hard), validated.

    With ``verifier``, every gold answer must also parse under it (see :func:`gold_problem`).
    """
    rows = read_jsonl(path, required=LABELED_FIELDS)
    check_answers(path, rows, verifier, modulus)
    return rows


def check_disjoint(pool_path: Path, *labeled_paths: Path) -> None:
    """Fail if any evaluation prompt also appears in the pool (a leak)."""
    pool = {r["prompt"]: r["id"] for r in read_jsonl(pool_path, required={"id": str, "prompt": str})}
    for path in labeled_paths:
        for lineno, r in zip(jsonl_row_lines(path), load_labeled(path)):
            if r["prompt"] in pool:
                raise DataError(f"{path}: row {lineno}: field 'prompt' also in the pool "
                                f"({pool_path}, id {pool[r['prompt']]!r}): splits overlap")


def validate_data_dir(data_dir: str | Path, task: dict | None = None) -> None:
    """Check the task files a run reads, before anything is trained or queried.

    Pool (no labels, unique ids), dev/test/test_hard (fields, gold answers the
    task's verifier can parse), no evaluation prompt in the pool, dev and test
    disjoint, and test_hard strictly harder than every pool prompt (when the
    data has difficulties; real-data loaders write difficulty 0 everywhere;
    skillchain's test_hard is harder by hard steps, not length, see the config check).

    Raises:
        DataError: naming file, row and field.
    """
    from pivottrace.data.pool import load_pool

    data_dir = Path(data_dir)
    task = task or {}
    verifier, modulus = task.get("verifier"), task.get("modulus")
    pool = load_pool(data_dir / "pool.jsonl")
    labeled = {name: data_dir / f"{name}.jsonl" for name in ("dev", "test", "test_hard")}
    rows = {name: load_labeled(path, verifier, modulus) for name, path in labeled.items()}
    check_disjoint(data_dir / "pool.jsonl", *labeled.values())
    dev_prompts = {r["prompt"]: r["id"] for r in rows["dev"]}
    for line, r in zip(jsonl_row_lines(labeled["test"]), rows["test"]):
        if r["prompt"] in dev_prompts:
            raise DataError(f"{labeled['test']}: row {line}: field 'prompt' also in "
                            f"{labeled['dev']} (id {dev_prompts[r['prompt']]!r}): splits overlap")
    pool_diff = [item.difficulty for item in pool]
    # skillchain's test_hard is harder by more hard steps at pool lengths (difficulty = length),
    # which the config check enforces (core.config._check_skillchain), not by length
    if task.get("name") != "skillchain" and (any(pool_diff) or any(r["difficulty"] for r in rows["test_hard"])):
        hardest = max(pool_diff)
        for line, r in zip(jsonl_row_lines(labeled["test_hard"]), rows["test_hard"]):
            if r["difficulty"] <= hardest:
                raise DataError(f"{labeled['test_hard']}: row {line}: field 'difficulty': "
                                f"{r['difficulty']} is not harder than the pool (hardest pool "
                                f"prompt has difficulty {hardest}); test_hard must be harder")
