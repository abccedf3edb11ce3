"""Answer extraction and verification: the gsm8k and math verifiers."""

from __future__ import annotations

import threading

import pytest

from pivottrace.data import real
from pivottrace.data.verifiers import VERIFIERS, get_verifier


def test_registry_has_all_verifiers():
    assert {"modchain", "gsm8k", "math"} <= set(VERIFIERS)
    for name in ("gsm8k", "math"):
        v = get_verifier(name)
        assert v.name == name and callable(v.extract) and callable(v.verify)
    with pytest.raises(ValueError, match="unknown verifier"):
        get_verifier("nope")


# --------------------------------------------------------------------- gsm8k

@pytest.mark.parametrize("completion, expected", [
    ("48 + 24 = 72\n#### 72", "72"),
    ("#### 1,080", "1080"),
    ("#### 109,200,000", "109200000"),
    ("#### $1,080.", "1080"),
    ("#### $ 18", "18"),
    ("It is 5. #### 72.", "72"),
    ("####72", "72"),
    ("#### -47", "-47"),
    ("#### \u22123", "-3"),
    ("#### 3.50", "3.5"),
    ("#### 27.0", "27"),
    ("#### .5", "0.5"),
    ("#### 007", "7"),
    ("#### 5\n#### 6", "6"),                       # the last mark wins
    ("#### 12 dollars", "12"),
    ("She pays $12.50 in total.", "12.5"),           # fallback: last number
    ("so 20-5 = 15 apples", "15"),
    ("the answer is 20-5", "5"),                     # "-" glued to 20 is not a sign
    ("the answer is -5.", "-5"),
    ("1,2,3", "3"),                                  # not a thousands group
    ("<<48/2=24>>24 clips", "24"),
    ("#### no number here, but 9 before", "9"),      # nothing after ####: fallback
    ("no answer at all", None),
    ("", None),
    ("####", None),
])
def test_gsm8k_extract(completion, expected):
    assert real.extract_gsm8k(completion) == expected


@pytest.mark.parametrize("completion, gold, ok", [
    ("#### 27", "27", True),
    ("#### 27.0", "27", True),
    ("#### 27", "27.0", True),
    ("#### 27.00", "27.000", True),
    ("#### 1,080", "1080", True),
    ("#### 1080", "1,080", True),
    ("#### $-3", "-3", True),
    ("#### -3", "3", False),
    ("#### 28", "27", False),
    ("#### 27.5", "27", False),
    ("no answer", "27", False),
    ("", "0", False),
])
def test_gsm8k_verify(completion, gold, ok):
    assert real.verify_gsm8k(completion, gold) is ok


def test_gsm8k_verify_rejects_non_numeric_gold():
    with pytest.raises(ValueError, match="not a number"):
        real.verify_gsm8k("#### 3", "three")


@pytest.mark.parametrize("text, expected", [
    ("27", "27"), ("27.0", "27"), ("025", "25"), ("-0", "0"), ("-0.50", "-0.5"),
    ("$1,234.", "1234"), (27.0, "27"), (0.25, "0.25"), (-1.0, "-1"), (7, "7"),
    ("1/2", None), ("abc", None), ("", None), (True, None), ("1.2.3", None),
])
def test_canonical_number(text, expected):
    assert real.canonical_number(text) == expected


# ---------------------------------------------------------------------- math

@pytest.mark.parametrize("completion, gold, ok", [
    ("so the answer is \\boxed{27}", "27", True),
    ("so the answer is \\boxed{27}", "27.0", True),         # AMC floats
    ("so the answer is \\boxed{27.0}", "27", True),
    ("so the answer is \\boxed{025}", "25", True),          # AIME zero padding
    ("so the answer is \\boxed{25}", "025", True),
    ("so the answer is \\boxed{-1}", "-1", True),
    ("so the answer is \\boxed{\\frac{1}{2}}", "0.5", True),
    ("so the answer is \\boxed{0.5}", "\\frac{1}{2}", True),
    ("so the answer is \\boxed{1,080}", "1080", True),
    ("so the answer is \\boxed{28}", "27", False),
    ("so the answer is \\boxed{1}", "-1", False),
    ("I do not know.", "27", False),
    ("", "27", False),
])
def test_math_verify(completion, gold, ok):
    assert real.verify_math(completion, gold) is ok


@pytest.mark.parametrize("completion, expected", [
    ("so the answer is \\boxed{27}", "27"),
    ("so the answer is \\boxed{025}", "25"),
    ("so the answer is \\boxed{27.0}", "27"),
    ("so the answer is \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("no answer here", None),
    ("", None),
])
def test_math_extract(completion, expected):
    assert real.extract_math(completion) == expected


def test_math_extract_round_trips():
    for c in ["so the answer is \\boxed{\\frac{3}{4}}", "\\boxed{-12}", "\\boxed{\\sqrt{2}}"]:
        assert real.verify_math(c, real.extract_math(c))


def test_math_verify_rejects_unparseable_gold():
    with pytest.raises(ValueError, match="cannot parse gold"):
        real.verify_math("\\boxed{1}", "")


def test_verifiers_work_off_the_main_thread():
    """math-verify's signal.alarm timeouts must not be used in a worker thread."""
    results, errors = {}, []

    def work():
        try:
            m, g = get_verifier("math"), get_verifier("gsm8k")
            results["math_ok"] = m.verify("so the answer is \\boxed{113}", "113")
            results["math_bad"] = m.verify("so the answer is \\boxed{114}", "113")
            results["math_extract"] = m.extract("so the answer is \\boxed{073}")
            results["gsm8k"] = g.verify("#### 1,080", "1080")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join(timeout=30)
    assert not errors, errors
    assert results == {"math_ok": True, "math_bad": False, "math_extract": "73", "gsm8k": True}
