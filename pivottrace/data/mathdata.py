"""Task ``math``: a MATH-style pool and evaluation sets from local JSONL files.

Configured by the ``task.math`` section (see ``pivottrace/core/schema.yaml`` and
``configs/paper.yaml``). Every split is a list of *sources*; a source is a path
or a mapping::

    {path: train.jsonl, prompt_field: problem, answer_field: solution,
     id_field: null, difficulty_field: level, difficulty: 0, limit: null}

* ``answer_field`` may hold a bare answer (``"27"``, ``27.0``,
  ``"\\frac{1}{2}"``) or a whole solution: then the content of its last
  ``\\boxed{...}`` (or ``\\fbox{...}``) is the gold answer. Every gold answer
  must parse under math-verify (:func:`pivottrace.data.real.math_gold`),
  else a :class:`~pivottrace.core.io.DataError` names file, row and field.
* ``difficulty_field`` may be an int or a MATH level string (``"Level 3"``
  -> 3); ``difficulty`` is a constant for sources without one (e.g. 6 for
  AIME/AMC, so that ``test_hard`` is harder than every pool level).
* ``id_field``: ids are ``<stem>-<id>``; without one ``<stem>-<line>``.
* ``limit``: keep a seeded random sample of that many rows (file order kept).

:func:`make_math` writes the files of ``docs/INTERFACES.md``: the pool
without answers plus ``pool_gold.jsonl``; dev (given sources or
``dev_from_pool`` rows carved out of the pool, seeded); test; test_hard; an
empty ``sft.jsonl`` (a ``model.path`` base model needs no warm start). Pool
rows whose prompt also occurs in an evaluation split are dropped (counted in
the returned ``dropped_overlap``), so the splits are disjoint by construction.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from pivottrace.core.io import DataError, read_jsonl
from pivottrace.data.real import (
    COMPETITION_TEMPLATE,
    GOLD_CHECKERS,
    _answer_text,
    _apply,
    _row_lines,
)
from pivottrace.data.splits import write_task_files

SPLITS = ("pool", "dev", "test", "test_hard")
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LEVEL_RE = re.compile(r"^\s*(?:level\s*)?(\d+)\s*$", re.IGNORECASE)
SOURCE_DEFAULTS = {"prompt_field": "problem", "answer_field": "answer", "id_field": None,
                   "difficulty_field": None, "difficulty": 0, "limit": None}


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces kept), or None.

    >>> last_boxed(r"so $x = \\boxed{\\frac{1}{2}}$, check: \\boxed{3}")
    '3'
    >>> last_boxed(r"\\boxed{\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    >>> last_boxed("no box") is None
    True
    """
    starts = [m.end() for m in _BOX_RE.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return text[start:i].strip()
    return None


def source_specs(spec) -> list[dict]:
    """A split's sources as a list of mappings with every field (defaults filled)."""
    if spec is None:
        return []
    items = spec if isinstance(spec, list) else [spec]
    out = []
    for item in items:
        item = {"path": item} if isinstance(item, str) else dict(item)
        out.append({**SOURCE_DEFAULTS, **item})
    return out


def source_paths(task: dict) -> list[str]:
    """Every local file or model directory a task reads (for the data rule's inputs)."""
    if task.get("name") == "wordproblems":
        w = task.get("wordproblems") or {}
        return [w["chat_model"]] + ([w["gsm8k"]["path"]] if w.get("gsm8k") else [])
    if task.get("name") != "math":
        return []
    m = task.get("math") or {}
    return [s["path"] for split in SPLITS for s in source_specs(m.get(split))]


def _difficulty(path: Path, line: int, field: str, value) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        found = _LEVEL_RE.match(value)
        if found:
            return int(found.group(1))
        if value.strip() in ("?", "Level ?", ""):
            return 0
    raise DataError(f"{path}: row {line}: field {field!r}: expected an int or 'Level N', "
                    f"got {value!r}")


def load_source(src: dict, template: str, seed: int) -> list[dict]:
    """Rows ``{"id", "prompt", "answer", "difficulty"}`` of one source (see the module docstring)."""
    path = Path(src["path"])
    if not path.is_file():
        raise FileNotFoundError(f"task.math source {path}: file not found")
    pf, af, idf, df = src["prompt_field"], src["answer_field"], src["id_field"], src["difficulty_field"]
    required: dict = {pf: str, af: (str, int, float)}
    if idf:
        required[idf] = (str, int)
    raw_rows = read_jsonl(path, required=required)
    lines = _row_lines(path)
    rows, seen = [], {}
    for raw, line in zip(raw_rows, lines, strict=True):
        if not raw[pf].strip():
            raise DataError(f"{path}: row {line}: field {pf!r} is empty")
        value = raw[af]
        if isinstance(value, str) and _BOX_RE.search(value):
            boxed = last_boxed(value)
            if boxed is None:
                raise DataError(f"{path}: row {line}: field {af!r}: unbalanced \\boxed{{...}}")
            value = boxed
        answer = _answer_text(path, line, af, value)
        gold = GOLD_CHECKERS["math"](answer)
        if gold is None:
            raise DataError(f"{path}: row {line}: field {af!r}: the math verifier cannot parse "
                            f"the answer {answer!r}")
        rid = f"{path.stem}-{raw[idf]}" if idf else f"{path.stem}-{line}"
        if rid in seen:
            raise DataError(f"{path}: row {line}: field {idf or 'line'!r}: duplicate id {rid!r} "
                            f"(first at row {seen[rid]})")
        seen[rid] = line
        diff = _difficulty(path, line, df, raw.get(df)) if df and df in raw else int(src["difficulty"])
        rows.append({"id": rid, "prompt": _apply(template, raw[pf]), "answer": gold,
                     "difficulty": diff})
    if src["limit"] is not None and len(rows) > int(src["limit"]):
        keep = sorted(random.Random(f"{seed}:{path.name}").sample(range(len(rows)), int(src["limit"])))
        rows = [rows[i] for i in keep]
    return rows


def _load_split(m: dict, name: str, template: str, seed: int) -> list[dict]:
    rows: list[dict] = []
    ids: set[str] = set()
    for src in source_specs(m.get(name)):
        for r in load_source(src, template, seed):
            if r["id"] in ids:
                raise DataError(f"{src['path']}: id {r['id']!r} also in another {name} source")
            ids.add(r["id"])
            rows.append(r)
    return rows


def make_math(task: dict, out_dir: Path) -> dict[str, int]:
    """Write pool (no answers), pool_gold, dev, test, test_hard and an empty sft file."""
    m = task["math"]
    template = m.get("template", COMPETITION_TEMPLATE)
    seed = task["seed"]
    splits = {name: _load_split(m, name, template, seed) for name in SPLITS}
    eval_prompts = {r["prompt"] for name in ("test", "test_hard") for r in splits[name]}
    n_dev_pool = int(m.get("dev_from_pool", 0) or 0)
    if not splits["dev"] and not n_dev_pool:
        raise ValueError("task.math: give dev sources or dev_from_pool > 0")
    eval_prompts |= {r["prompt"] for r in splits["dev"]}
    pool = [r for r in splits["pool"] if r["prompt"] not in eval_prompts]
    dropped = len(splits["pool"]) - len(pool)
    if n_dev_pool:
        if n_dev_pool >= len(pool):
            raise ValueError(f"task.math.dev_from_pool={n_dev_pool} leaves no pool "
                             f"({len(pool)} pool rows)")
        carve = set(random.Random(seed).sample(range(len(pool)), n_dev_pool))
        splits["dev"] += [r for i, r in enumerate(pool) if i in carve]
        pool = [r for i, r in enumerate(pool) if i not in carve]
    if not pool or not splits["test"] or not splits["test_hard"]:
        empty = [n for n, rows in (("pool", pool), ("test", splits["test"]),
                                   ("test_hard", splits["test_hard"])) if not rows]
        raise ValueError(f"task.math: split(s) {empty} are empty")
    write_task_files(out_dir, pool, splits)
    return {"pool": len(pool), "dev": len(splits["dev"]), "test": len(splits["test"]),
            "test_hard": len(splits["test_hard"]), "sft": 0, "dropped_overlap": dropped}
