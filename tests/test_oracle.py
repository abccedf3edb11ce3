"""The annotation oracle counts distinct ids, refuses past its budget, and keeps answers private."""

import json

import pytest

from pivottrace.core.io import DataError
from pivottrace.labeled.oracle import AnnotationOracle, BudgetExceededError, UnknownIdError

GOLD = {"a": "SECRET-11", "b": "SECRET-22", "c": "SECRET-33", "d": "SECRET-44", "e": "SECRET-55"}


@pytest.fixture
def gold_path(tmp_path):
    path = tmp_path / "pool_gold.jsonl"
    path.write_text("".join(json.dumps({"id": k, "answer": v}) + "\n" for k, v in GOLD.items()))
    return path


def test_counts_distinct_ids_and_reasks_are_free(gold_path):
    oracle = AnnotationOracle(gold_path, max_queries=3)
    assert oracle.annotate(["b", "a", "b"]) == {"b": GOLD["b"], "a": GOLD["a"]}
    assert oracle.n_annotated == 2 and oracle.remaining == 1
    assert oracle.annotate(["a", "b"]) == {"a": GOLD["a"], "b": GOLD["b"]}
    assert oracle.n_annotated == 2
    assert oracle.annotate(["a", "c"]) == {"a": GOLD["a"], "c": GOLD["c"]}
    assert oracle.n_annotated == 3 and oracle.remaining == 0
    assert oracle.annotate(["c", "b", "a"]) == {"c": GOLD["c"], "b": GOLD["b"], "a": GOLD["a"]}
    assert oracle.annotate([]) == {}


def test_refuses_past_budget_and_reveals_nothing(gold_path):
    oracle = AnnotationOracle(gold_path, max_queries=2)
    oracle.annotate(["a"])
    with pytest.raises(BudgetExceededError, match="max_queries=2"):
        oracle.annotate(["a", "b", "c"])  # 1 already + 2 new = 3 > 2: nothing revealed
    assert oracle.ledger()["annotated_ids"] == ["a"]
    oracle.annotate(["b"])
    with pytest.raises(BudgetExceededError):
        oracle.annotate(["d"])
    assert oracle.ledger()["annotated_ids"] == ["a", "b"]
    assert oracle.annotate(["b", "a"]) == {"b": GOLD["b"], "a": GOLD["a"]}  # still free

    zero = AnnotationOracle(gold_path, max_queries=0)
    with pytest.raises(BudgetExceededError):
        zero.annotate(["a"])


def test_unknown_id_and_bad_arguments(gold_path):
    oracle = AnnotationOracle(gold_path, max_queries=5)
    with pytest.raises(UnknownIdError, match="'zz'.*pool_gold.jsonl") as err:
        oracle.annotate(["a", "zz"])
    assert isinstance(err.value, KeyError)
    assert oracle.n_annotated == 0  # the known id in the failed call was not revealed
    with pytest.raises(TypeError, match="single string"):
        oracle.annotate("abc")
    with pytest.raises(TypeError, match="strings"):
        oracle.annotate([1])
    for bad in (-1, 1.5, True, None):
        with pytest.raises(ValueError, match="max_queries"):
            AnnotationOracle(gold_path, max_queries=bad)


def test_bad_gold_file(tmp_path):
    path = tmp_path / "pool_gold.jsonl"
    path.write_text('{"id": "a", "answer": "1"}\n{"id": "b"}\n')
    with pytest.raises(DataError, match=r"pool_gold.jsonl: row 2: missing field 'answer'"):
        AnnotationOracle(path, max_queries=1)
    path.write_text('{"id": "a", "answer": "1"}\n{"id": "a", "answer": "2"}\n')
    with pytest.raises(DataError, match="duplicate id 'a'"):
        AnnotationOracle(path, max_queries=1)


def test_ledger_contents_and_file(gold_path, tmp_path):
    oracle = AnnotationOracle(gold_path, max_queries=4)
    oracle.annotate(["d", "b"])
    oracle.annotate(["b", "a"])
    expected = {"annotated_ids": ["a", "b", "d"], "n_annotated": 3, "max_queries": 4}
    assert oracle.ledger() == expected
    out = tmp_path / "runs" / "random" / "0.2" / "0" / "ledger.json"
    oracle.write_ledger(out)
    assert json.loads(out.read_text()) == expected
    assert sorted(p.name for p in out.parent.iterdir()) == ["ledger.json"]  # no temp file left
    assert "SECRET" not in out.read_text()


def test_answers_do_not_leak(gold_path):
    oracle = AnnotationOracle(gold_path, max_queries=5)
    oracle.annotate(["a", "b"])
    for text in (repr(oracle), str(oracle)):
        assert "SECRET" not in text
    assert "n_annotated=2" in repr(oracle)
    with pytest.raises(TypeError):
        vars(oracle)  # slotted: no __dict__ to dump
    for name in dir(oracle):
        if name.startswith("_"):
            continue
        value = getattr(oracle, name)
        if not callable(value):
            assert "SECRET" not in repr(value), name
    assert "SECRET" not in json.dumps(oracle.ledger())
