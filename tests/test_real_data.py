"""Loaders of real benchmark data (GSM8K, AIME 2024, AMC 2023) on small fixtures.

The fixtures are rows copied verbatim from ``shared/data`` (GSM8K: MIT, see
``fixtures/GSM8K_LICENSE``): gsm8k_sample = train lines 1-14, 346, 368, 645,
1265, 262, 5716, 5845 then test lines 1-6, 147, 612, 1010, 688, 490, 1114
(thousands commas, negative answers, the longest solutions);
aime24_sample = ids 60, 61, 62, 67, 75, 78, 83, 85 (zero-padded answers);
amc23_sample = ids 0, 1, 3, 10, 17, 20, 44, 47 (float answers, one negative).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pivottrace.core.io import DataError
from pivottrace.data import real
from pivottrace.data.verifiers import get_verifier

FIX = Path(__file__).parent / "fixtures"
GSM8K = FIX / "gsm8k_sample.jsonl"
AIME = FIX / "aime24_sample.jsonl"
AMC = FIX / "amc23_sample.jsonl"
SHARED = Path(os.environ.get("PIVOTTRACE_REAL_DATA",
                             Path(__file__).resolve().parents[2] / "shared" / "data"))
ROW_KEYS = {"id", "prompt", "answer", "difficulty"}


def raw_rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def check_common_format(rows):
    assert rows
    for r in rows:
        assert set(r) == ROW_KEYS
        assert isinstance(r["id"], str) and isinstance(r["prompt"], str)
        assert isinstance(r["answer"], str) and r["answer"]
        assert isinstance(r["difficulty"], int) and not isinstance(r["difficulty"], bool)
    assert len({r["id"] for r in rows}) == len(rows)


# ----------------------------------------------------------------- fixtures

def test_fixtures_present_with_license():
    assert "MIT License" in (FIX / "GSM8K_LICENSE").read_text()
    assert len(raw_rows(GSM8K)) == 33
    assert len(raw_rows(AIME)) == 8 and len(raw_rows(AMC)) == 8
    assert all(set(r) == {"question", "answer"} for r in raw_rows(GSM8K))
    assert all({"id", "problem", "question", "answer", "url", "solution"} == set(r)
               for r in raw_rows(AIME))
    assert all({"id", "problem", "question", "answer", "url"} == set(r) for r in raw_rows(AMC))


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared/data not available")
def test_fixture_rows_are_verbatim_copies():
    for fixture, sources in [(GSM8K, ["gsm8k/train.jsonl", "gsm8k/test.jsonl"]),
                             (AIME, ["competition/aime24.jsonl"]),
                             (AMC, ["competition/amc23.jsonl"])]:
        source_lines = set()
        for s in sources:
            source_lines |= set((SHARED / s).read_bytes().split(b"\n"))
        for line in fixture.read_bytes().split(b"\n"):
            assert not line.strip() or line in source_lines


# ------------------------------------------------------------------- gsm8k

def test_load_gsm8k_rows_and_gold():
    rows = real.load_gsm8k(GSM8K)
    check_common_format(rows)
    assert len(rows) == 33
    assert rows[0]["id"] == "gsm8k-gsm8k_sample-1"
    assert rows[0]["answer"] == "72" and rows[0]["difficulty"] == 2
    assert rows[0]["prompt"].startswith("Question: Natalia sold clips")
    assert rows[0]["prompt"].endswith("Put the final answer after ####.\nAnswer:")
    golds = {r["answer"] for r in rows}
    assert {"1080", "109200000", "-7", "-47", "-10", "-3"} <= golds  # commas stripped, negatives
    assert max(r["difficulty"] for r in rows) == 11
    assert all(r["difficulty"] >= 1 for r in rows)


def test_gsm8k_reference_solutions_verify_against_gold():
    v = get_verifier("gsm8k")
    for row, raw in zip(real.load_gsm8k(GSM8K), raw_rows(GSM8K), strict=True):
        solution = raw["answer"]
        assert v.verify(solution, row["answer"]), row["id"]
        assert v.extract(solution) == row["answer"]
        wrong = str(int(row["answer"]) + 1)
        assert not v.verify(solution, wrong), row["id"]
        assert not v.verify(solution.rpartition("####")[0] + f"#### {wrong}", row["answer"])


def test_load_gsm8k_template_and_prefix():
    rows = real.load_gsm8k(GSM8K, template="Q: {prompt} A:", id_prefix="g")
    assert rows[1]["id"] == "g-2"
    assert rows[1]["prompt"].startswith("Q: Weng earns") and rows[1]["prompt"].endswith(" A:")
    with pytest.raises(ValueError, match="exactly once"):
        real.load_gsm8k(GSM8K, template="no placeholder")


# ------------------------------------------------------------- competition

@pytest.mark.parametrize("path, prefix", [(AIME, "aime24_sample"), (AMC, "amc23_sample")])
def test_competition_golds_verify(path, prefix):
    v = get_verifier("math")
    rows = real.load_competition(path)
    check_common_format(rows)
    for row, raw in zip(rows, raw_rows(path), strict=True):
        assert row["id"] == f"{prefix}-{raw['id']}"
        assert row["difficulty"] == 0
        assert row["prompt"].startswith("Problem: " + raw["problem"].strip()[:30])
        assert "\\boxed{}" in row["prompt"]
        ans = row["answer"]
        assert v.verify(f"... so the answer is \\boxed{{{ans}}}", ans), row["id"]
        # the raw gold, as stored in the file ("025", 27.0), verifies too
        assert v.verify(f"... so the answer is \\boxed{{{ans}}}", raw["answer"]), row["id"]
        assert v.verify(f"... so the answer is \\boxed{{{raw['answer']}}}", ans), row["id"]
        assert not v.verify(f"... so the answer is \\boxed{{{int(ans) + 1}}}", ans), row["id"]


def test_competition_answers_are_normalised():
    aime = {r["id"]: r["answer"] for r in real.load_competition(AIME)}
    assert aime["aime24_sample-67"] == "25"   # stored as "025"
    assert aime["aime24_sample-60"] == "204"
    amc = {r["id"]: r["answer"] for r in real.load_competition(AMC)}
    assert amc["amc23_sample-0"] == "27"      # stored as 27.0
    assert amc["amc23_sample-17"] == "-1"     # stored as -1.0


def test_load_local_jsonl_generic(tmp_path):
    p = tmp_path / "mine.jsonl"
    p.write_text(json.dumps({"q": "What is 1/2 + 1/4?", "a": "\\frac{3}{4}", "key": "x", "lvl": 3})
                 + "\n\n" + json.dumps({"q": "2+2?", "a": 4, "key": "y", "lvl": 1}) + "\n")
    rows = real.load_local_jsonl(p, "q", "a", "key", verifier="math", difficulty_field="lvl",
                                 template="{prompt} Answer in \\boxed{}.")
    check_common_format(rows)
    assert [r["id"] for r in rows] == ["mine-x", "mine-y"]
    assert rows[0]["answer"] == "\\frac{3}{4}" and rows[1]["answer"] == "4"
    assert rows[0]["difficulty"] == 3
    assert rows[1]["prompt"] == "2+2? Answer in \\boxed{}."
    assert get_verifier("math").verify("\\boxed{0.75}", rows[0]["answer"])
    # no id field: ids from the 1-based line (the blank line 2 is skipped)
    rows = real.load_local_jsonl(p, "q", "a", id_prefix="m")
    assert [r["id"] for r in rows] == ["m-1", "m-3"] and rows[0]["difficulty"] == 0
    rows = real.load_local_jsonl(p, "q", "a", "key", id_prefix="")
    assert [r["id"] for r in rows] == ["x", "y"]
    with pytest.raises(ValueError, match="unknown verifier"):
        real.load_local_jsonl(p, "q", "a", verifier="nope")


# ------------------------------------------------------------------ errors

def write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return p


GOOD_GSM = json.dumps({"question": "1+1?", "answer": "1+1=2\n#### 2"})


@pytest.mark.parametrize("bad, pattern", [
    (json.dumps({"answer": "#### 2"}), r"row 2: missing field 'question'"),
    (json.dumps({"question": "1+1?"}), r"row 2: missing field 'answer'"),
    ('{"question": "1+1?", "answer": ', r"row 2: invalid JSON"),
    (json.dumps({"question": "1+1?", "answer": "1+1=2\nso 2"}), r"row 2: field 'answer'.*####"),
    (json.dumps({"question": "1+1?", "answer": "#### two"}), r"row 2: field 'answer'.*####"),
    (json.dumps({"question": "1+1?", "answer": 2}), r"row 2: field 'answer' has type int"),
    (json.dumps({"question": "  ", "answer": "#### 2"}), r"row 2: field 'question' is empty"),
])
def test_gsm8k_errors_name_file_row_field(tmp_path, bad, pattern):
    p = write(tmp_path, "g.jsonl", [GOOD_GSM, bad])
    with pytest.raises(DataError, match=pattern) as e:
        real.load_gsm8k(p)
    assert str(p) in str(e.value)


def test_gsm8k_missing_and_empty_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        real.load_gsm8k(tmp_path / "absent.jsonl")
    with pytest.raises(DataError, match="no rows"):
        real.load_gsm8k(write(tmp_path, "empty.jsonl", []))


GOOD_COMP = json.dumps({"id": 1, "problem": "Find x.", "answer": "3"})


@pytest.mark.parametrize("bad, pattern", [
    (json.dumps({"id": 2, "answer": "3"}), r"row 2: missing field 'problem'"),
    (json.dumps({"id": 2, "problem": "Find y."}), r"row 2: missing field 'answer'"),
    (json.dumps({"problem": "Find y.", "answer": "3"}), r"row 2: missing field 'id'"),
    ("not json", r"row 2: invalid JSON"),
    (json.dumps({"id": 2, "problem": "Find y.", "answer": ""}), r"row 2: field 'answer' is empty"),
    (json.dumps({"id": 2, "problem": "Find y.", "answer": "\\frac{"}),
     r"row 2: field 'answer': the math verifier cannot parse"),
    (json.dumps({"id": 2, "problem": "Find y.", "answer": None}), r"row 2: field 'answer' has type"),
    (json.dumps({"id": 2, "problem": "Find y.", "answer": True}), r"row 2: field 'answer' has type bool"),
    (json.dumps({"id": 1, "problem": "Find y.", "answer": "4"}), r"row 2: field 'id': duplicate id"),
    (json.dumps({"id": "1", "problem": "Find y.", "answer": "4"}), r"row 2: field 'id': duplicate id"),
])
def test_competition_errors_name_file_row_field(tmp_path, bad, pattern):
    p = write(tmp_path, "c.jsonl", [GOOD_COMP, bad])
    with pytest.raises(DataError, match=pattern) as e:
        real.load_competition(p)
    assert str(p) in str(e.value)


def test_generic_loader_checks_gold_with_verifier(tmp_path):
    p = write(tmp_path, "n.jsonl", [json.dumps({"q": "a", "a": "7"}), "",
                                    json.dumps({"q": "b", "a": "seven"})])
    assert len(real.load_local_jsonl(p, "q", "a")) == 2           # no verifier: no check
    with pytest.raises(DataError, match=r"row 3: field 'a': the gsm8k verifier cannot parse"):
        real.load_local_jsonl(p, "q", "a", verifier="gsm8k")


# -------------------------------------------------------------- real files

@pytest.mark.skipif(not (SHARED / "competition").is_dir(), reason="shared/data not available")
def test_full_competition_files_load():
    assert len(real.load_competition(SHARED / "competition" / "aime24.jsonl")) == 30
    assert len(real.load_competition(SHARED / "competition" / "amc23.jsonl")) == 40


@pytest.mark.skipif(not (SHARED / "gsm8k").is_dir(), reason="shared/data not available")
def test_full_gsm8k_test_split_loads():
    rows = real.load_gsm8k(SHARED / "gsm8k" / "test.jsonl")
    assert len(rows) == 1319 and rows[0]["id"] == "gsm8k-test-1"
