"""Real benchmark data (GSM8K, AIME/AMC) and their answer verifiers.

Loaders turn local JSONL files into the common task row
``{"id": str, "prompt": str, "answer": str, "difficulty": int}``
(see ``docs/INTERFACES.md``). Every gold answer is checked at load time with
the verifier it will be graded by, so a row whose answer cannot be parsed is a
:class:`~pivottrace.core.io.DataError` naming file, row (1-based line) and field,
not a silent zero reward during training.

Source formats (as stored in ``shared/data``):

* GSM8K ``{"question", "answer"}``: the answer is the reference solution, its
  last line ``#### <number>`` (numbers may carry thousands commas, ``1,080``).
  No id field: ids are ``<id_prefix>-<line>`` (default prefix ``gsm8k-<stem>``).
  Difficulty = number of non-empty solution lines before ``####`` (the steps).
* AIME/AMC ``{"id", "problem", "question", "answer", "url"[, "solution"]}``:
  ``id`` is an int, ``answer`` a string (AIME, zero-padded: ``"025"``) or a
  float (AMC: ``27.0``). Ids become ``<stem>-<id>``; numeric answers are
  normalised (``27.0`` -> ``"27"``, ``"025"`` -> ``"25"``). Difficulty is 0
  unless ``difficulty_field`` names an int field (these files have none).

Verifiers (registered in :mod:`pivottrace.data.verifiers`):

* ``gsm8k``: the number after the last ``####`` (commas, ``$`` and a trailing
  period stripped), else the last number in the text; compared numerically.
* ``math``: math-verify ``parse`` + ``verify(gold, pred)``; signal-based
  timeouts are used only on the main thread.

Examples:
    >>> extract_gsm8k("so 3 * 4 = 12\\n#### 1,080.")
    '1080'
    >>> verify_gsm8k("The total is $27.00", "27")
    True
    >>> canonical_number("-0.50")
    '-0.5'
"""

from __future__ import annotations

import re
import threading
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from pivottrace.core.io import DataError, read_jsonl

GSM8K_TEMPLATE = ("Question: {prompt}\n"
                  "Solve it step by step. Put the final answer after ####.\n"
                  "Answer:")
COMPETITION_TEMPLATE = ("Problem: {prompt}\n"
                        "Solve it step by step. Put the final answer in \\boxed{}.\n"
                        "Solution:")
PLACEHOLDER = "{prompt}"
GSM8K_MARK = "####"

# A number: "$" and a sign in either order (the sign not when glued to a preceding
# word/number, so "20-5" is 20 and 5), thousands groups or plain digits, decimals.
_NUM = (r"(?:\$\s?)?(?:(?<![\w.)\]])[-\u2212]\s?)?\$?\s?"
        r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)")
_NUM_RE = re.compile(_NUM)
_AFTER_MARK_RE = re.compile(r"^[\s:=]*(" + _NUM + ")")
_CANON_RE = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")


# ---------------------------------------------------------------------------
# numbers


def canonical_number(text: str | int | float) -> str | None:
    """A number's canonical string, or None if ``text`` is not a single number.

    Strips whitespace, ``$``, thousands commas and a trailing period; integral
    values lose their decimals and leading zeros (``"027.0"`` -> ``"27"``).

    >>> canonical_number("$1,080.")
    '1080'
    >>> canonical_number("3.140")
    '3.14'
    >>> canonical_number("1/2") is None
    True
    """
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        text = repr(text)
    s = text.strip().replace("\u2212", "-").replace("$", "").replace(",", "")
    s = s.replace(" ", "")
    if s.endswith(".") and s[:-1] and s[-2].isdigit():
        s = s[:-1]
    if not _CANON_RE.fullmatch(s) and not re.fullmatch(r"[-+]?\d+(?:\.\d*)?e[-+]?\d+", s):
        return None
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


# ---------------------------------------------------------------------------
# gsm8k verifier


def extract_gsm8k(completion: str) -> str | None:
    """The number after the last ``####``, else the last number; canonical, or None.

    >>> extract_gsm8k("48/2 = <<48/2=24>>24\\n#### 72")
    '72'
    >>> extract_gsm8k("no digits here") is None
    True
    """
    if not isinstance(completion, str):
        return None
    head, mark, tail = completion.rpartition(GSM8K_MARK)
    if mark:
        m = _AFTER_MARK_RE.match(tail)
        if m:
            return canonical_number(m.group(1))
    found = _NUM_RE.findall(completion)
    return canonical_number(found[-1]) if found else None


def gsm8k_gold(solution: str) -> str | None:
    """The canonical gold number of a GSM8K reference solution (strict: needs ``####``)."""
    head, mark, tail = solution.rpartition(GSM8K_MARK)
    if not mark:
        return None
    m = _AFTER_MARK_RE.match(tail)
    if not m or tail[m.end():].strip() not in ("", "."):
        return None
    return canonical_number(m.group(1))


def verify_gsm8k(completion: str, gold: str) -> bool:
    """Numeric equality of the extracted answer and ``gold`` (``"27" == "27.0"``).

    Raises:
        ValueError: if ``gold`` is not a number (a data bug, not a wrong answer).
    """
    want = canonical_number(gold)
    if want is None:
        raise ValueError(f"gsm8k verifier: gold answer {gold!r} is not a number")
    got = extract_gsm8k(completion)
    return got is not None and Decimal(got) == Decimal(want)


# ---------------------------------------------------------------------------
# math verifier (math-verify, imported lazily: it pulls in sympy)


def _timeouts() -> tuple[dict, dict]:
    """math-verify keyword arguments: signal-based timeouts only on the main thread."""
    if threading.current_thread() is threading.main_thread():
        return {}, {}
    return {"parsing_timeout": None}, {"timeout_seconds": None}


def _gold_text(gold: str | int | float) -> str:
    num = canonical_number(gold)
    if num is not None:
        return num
    return str(gold).strip()


@lru_cache(maxsize=4096)
def _parse_gold(gold: str, main_thread: bool) -> tuple:
    from math_verify import parse

    text = gold if ("\\boxed" in gold or "$" in gold) else f"\\boxed{{{gold}}}"
    kw = {} if main_thread else {"parsing_timeout": None}
    return tuple(parse(text, **kw))


def math_gold(gold: str | int | float) -> tuple:
    """math-verify's parse of a gold answer (empty if it cannot be parsed)."""
    return _parse_gold(_gold_text(gold), threading.current_thread() is threading.main_thread())


def extract_math(completion: str) -> str | None:
    """The answer math-verify extracts (boxed answers first), or None.

    Numbers are canonical (``"025"`` -> ``"25"``); anything else is the matched
    text (e.g. ``\\frac{1}{2}``), so ``verify_math(c, extract_math(c))`` holds.
    """
    if not isinstance(completion, str):
        return None
    from math_verify import parse

    parse_kw, _ = _timeouts()
    found = parse(completion, **parse_kw)
    if not found:
        return None
    raw = next((x for x in reversed(found) if isinstance(x, str)), None)
    if raw is None:
        raw = str(found[0])
    return canonical_number(raw) or raw.strip() or None


def verify_math(completion: str, gold: str) -> bool:
    """math-verify ``verify(gold, pred)`` of ``completion`` against ``gold``.

    Raises:
        ValueError: if math-verify cannot parse ``gold``.
    """
    from math_verify import parse, verify

    want = math_gold(gold)
    if not want:
        raise ValueError(f"math verifier: cannot parse gold answer {gold!r}")
    if not isinstance(completion, str):
        return False
    parse_kw, verify_kw = _timeouts()
    got = parse(completion, **parse_kw)
    if not got:
        return False
    return bool(verify(list(want), got, **verify_kw))


def _check_gsm8k_gold(answer: str) -> str | None:
    return canonical_number(answer)


def _check_math_gold(answer: str) -> str | None:
    # math-verify falls back to the raw string when sympy parsing fails; a gold
    # answer must parse to a math object.
    text = _gold_text(answer)
    return text if any(not isinstance(x, str) for x in math_gold(text)) else None


GOLD_CHECKERS = {"gsm8k": _check_gsm8k_gold, "math": _check_math_gold}
"""verifier name -> (gold string -> normalised gold, or None if unparseable)."""


# ---------------------------------------------------------------------------
# loaders


def _row_lines(path: Path) -> list[int]:
    """1-based line numbers of the non-blank lines (the rows ``read_jsonl`` returns)."""
    return [i for i, line in enumerate(path.read_bytes().split(b"\n"), start=1) if line.strip()]


def _apply(template: str, text: str) -> str:
    if template.count(PLACEHOLDER) != 1:
        raise ValueError(f"prompt template must contain {PLACEHOLDER!r} exactly once: {template!r}")
    return template.replace(PLACEHOLDER, text.strip())


def _answer_text(path: Path, line: int, field: str, value) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DataError(f"{path}: row {line}: field {field!r} has type "
                        f"{type(value).__name__}, expected str or number")
    text = _gold_text(value)
    if not text:
        raise DataError(f"{path}: row {line}: field {field!r} is empty")
    return text


def _check_unique(path: Path, rows: list[dict], lines: list[int]) -> None:
    seen: dict[str, int] = {}
    for row, line in zip(rows, lines, strict=True):
        if row["id"] in seen:
            raise DataError(f"{path}: row {line}: field 'id': duplicate id {row['id']!r} "
                            f"(first at row {seen[row['id']]})")
        seen[row["id"]] = line


def load_local_jsonl(path, prompt_field: str, answer_field: str, id_field: str | None = None, *,
                     template: str = PLACEHOLDER, verifier: str | None = None,
                     difficulty_field: str | None = None,
                     id_prefix: str | None = None) -> list[dict]:
    """Load any JSONL file of problems into common task rows.

    Args:
        path: the JSONL file.
        prompt_field: field holding the problem text (must be a non-empty string).
        answer_field: field holding the gold answer (string or number; numbers
            are normalised, ``27.0`` -> ``"27"``).
        id_field: field holding the id (str or int); None: ids are ``<prefix>-<line>``.
        template: prompt template containing ``{prompt}`` once (filled by
            replacement, so LaTeX braces such as ``\\boxed{}`` need no escaping).
        verifier: ``"gsm8k"`` or ``"math"``: every gold answer must parse under
            it (else DataError); None skips the check.
        difficulty_field: optional int field copied to ``difficulty`` (else 0).
        id_prefix: prefix of the ids; default the file's stem.
    Returns:
        Rows ``{"id", "prompt", "answer", "difficulty"}`` in file order.
    Raises:
        DataError: naming file, row (1-based line) and field.
    """
    path = Path(path)
    if verifier is not None and verifier not in GOLD_CHECKERS:
        raise ValueError(f"unknown verifier {verifier!r}; known: {sorted(GOLD_CHECKERS)}")
    required: dict = {prompt_field: str, answer_field: (str, int, float)}
    if id_field is not None:
        required[id_field] = (str, int)
    if difficulty_field is not None:
        required[difficulty_field] = int
    raw_rows = read_jsonl(path, required=required)
    lines = _row_lines(path)
    prefix = path.stem if id_prefix is None else id_prefix
    rows = []
    for raw, line in zip(raw_rows, lines, strict=True):
        if not raw[prompt_field].strip():
            raise DataError(f"{path}: row {line}: field {prompt_field!r} is empty")
        answer = _answer_text(path, line, answer_field, raw[answer_field])
        if verifier is not None:
            checked = GOLD_CHECKERS[verifier](answer)
            if checked is None:
                raise DataError(f"{path}: row {line}: field {answer_field!r}: the {verifier} "
                                f"verifier cannot parse the answer {answer!r}")
            answer = checked
        if id_field is None:
            rid = f"{prefix}-{line}"
        else:
            if isinstance(raw[id_field], bool):
                raise DataError(f"{path}: row {line}: field {id_field!r} has type bool")
            rid = f"{prefix}-{raw[id_field]}" if prefix else str(raw[id_field])
        rows.append({"id": rid, "prompt": _apply(template, raw[prompt_field]), "answer": answer,
                     "difficulty": raw[difficulty_field] if difficulty_field else 0})
    _check_unique(path, rows, lines)
    return rows


def load_gsm8k(path, template: str = GSM8K_TEMPLATE, id_prefix: str | None = None) -> list[dict]:
    """Load a GSM8K file (``question``, ``answer`` = solution ending ``#### <number>``).

    The gold is the canonical number after ``####`` (``"1,080"`` -> ``"1080"``);
    difficulty is the number of non-empty solution lines before it.
    Ids are ``<id_prefix>-<line>``, default prefix ``gsm8k-<file stem>``.

    Raises:
        DataError: bad JSON, a missing/mistyped field, or an answer without a
            parseable ``#### <number>`` (naming file, row and field).
    """
    path = Path(path)
    raw_rows = read_jsonl(path, required={"question": str, "answer": str})
    lines = _row_lines(path)
    prefix = f"gsm8k-{path.stem}" if id_prefix is None else id_prefix
    rows = []
    for raw, line in zip(raw_rows, lines, strict=True):
        if not raw["question"].strip():
            raise DataError(f"{path}: row {line}: field 'question' is empty")
        gold = gsm8k_gold(raw["answer"])
        if gold is None:
            raise DataError(f"{path}: row {line}: field 'answer': no '#### <number>' final "
                            f"answer in {raw['answer'][-60:]!r}")
        steps = raw["answer"].rpartition(GSM8K_MARK)[0]
        rows.append({"id": f"{prefix}-{line}", "prompt": _apply(template, raw["question"]),
                     "answer": gold,
                     "difficulty": sum(1 for s in steps.splitlines() if s.strip())})
    return rows


def load_competition(path, template: str = COMPETITION_TEMPLATE, id_prefix: str | None = None,
                     difficulty_field: str | None = None) -> list[dict]:
    """Load an AIME/AMC-style file (``id``, ``problem``, ``answer``) graded by ``math``.

    Ids are ``<id_prefix>-<id>`` (default prefix: the file stem, e.g.
    ``aime24-60``); numeric answers are normalised (``27.0`` -> ``"27"``,
    ``"025"`` -> ``"25"``); difficulty is ``difficulty_field`` if given, else 0.

    Raises:
        DataError: naming file, row and field (incl. answers math-verify cannot parse).
    """
    return load_local_jsonl(path, "problem", "answer", "id", template=template, verifier="math",
                            difficulty_field=difficulty_field, id_prefix=id_prefix)
