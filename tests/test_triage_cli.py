"""``pivottrace triage``: own unlabeled prompts -> annotate/self/defer (pivottrace/method/own_data.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pivottrace.cli import main
from pivottrace.core.io import DataError
from pivottrace.data.pool import ROUTES, n_to_annotate
from pivottrace.method.own_data import OUTPUT_FILES, TRIAGE_COLUMNS, load_prompts, render_prompt
from pivottrace.method.scoring import SCORE_COLUMNS

N = 6


def _write(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def prompts(tiny, tmp_path_factory) -> Path:
    """Six pool prompts of the tiny testbed; every other row without an id (-> row-<line>)."""
    pool = [json.loads(line) for line in (tiny["data"] / "pool.jsonl").read_text().splitlines()][:N]
    rows = [{"id": r["id"], "prompt": r["prompt"]} if k % 2 == 0 else {"prompt": r["prompt"]}
            for k, r in enumerate(pool)]
    return _write(tmp_path_factory.mktemp("triage") / "prompts.jsonl", rows)


def _triage(tiny, prompts, out, budget, *extra) -> int:
    return main(["--config", str(tiny["config"]), "triage", "--model", str(tiny["model"]),
                 "--prompts", str(prompts), "--budget", budget, "--out", str(out), "--k", "2",
                 "--max-new-tokens", "24", "--batch-size", "6", "--verifier", "modchain", *extra])


def _check_outputs(out: Path, prompts: Path) -> tuple[pd.DataFrame, dict]:
    for name in OUTPUT_FILES:
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "triage.jsonl").read_text().splitlines()]
    csv = pd.read_csv(out / "triage.csv", dtype={"id": str, "majority_answer": str})
    assert list(csv.columns) == list(TRIAGE_COLUMNS)
    expected_ids = [r.get("id", f"row-{k}") for k, r in enumerate(
        (json.loads(line) for line in prompts.read_text().splitlines()), start=1)]
    assert [r["id"] for r in rows] == expected_ids == list(csv["id"])  # each once, input order
    assert all(r["route"] in ROUTES for r in rows)
    assert sorted(r["rank"] for r in rows) == list(range(1, N + 1))
    assert set(SCORE_COLUMNS) <= set(rows[0])
    assert all(0 < r["majority_share"] <= 1 for r in rows)
    traces = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 2 * N and not {"stats", "score_array"} & set(traces[0])
    summary = json.loads((out / "summary.json").read_text())
    assert sum(summary["counts"].values()) == N and summary["K"] == 2
    assert summary["counts"] == {r: sum(x["route"] == r for x in rows) for r in ROUTES}
    assert set(summary["pivot"]) >= {"score", "layers", "tau", "window"}
    # ranks follow pivot density (descending)
    by_rank = sorted(rows, key=lambda r: r["rank"])
    assert all(a["pivot_density"] >= b["pivot_density"] for a, b in zip(by_rank, by_rank[1:]))
    return csv, summary


def test_triage_fixed_budget(tiny, prompts, tmp_path, capsys):
    out = tmp_path / "out"
    assert _triage(tiny, prompts, out, "0.3") == 0
    csv, summary = _check_outputs(out, prompts)
    assert summary["budget"] == 0.3 and summary["options"]["verifier"] == "modchain"
    assert summary["options"]["chat_template"] is False  # the testbed tokenizer has none
    assert summary["counts"]["annotate"] == n_to_annotate(0.3, N) == 2
    assert summary["counts"]["defer"] == 1  # selection.pivottrace.defer_fraction 0.1 of 6, rounded
    stdout = capsys.readouterr().out
    assert "annotate" in stdout and "#" in stdout and "pivot_density" in stdout
    assert str(out) in stdout


def test_triage_auto_budget(tiny, prompts, tmp_path):
    out = tmp_path / "out"
    choice = tmp_path / "pivot_choice.json"  # as tune-pivots writes it
    choice.write_text(json.dumps({"score": "shift", "layers": "all", "tau": 1.5, "window": 3}))
    assert _triage(tiny, prompts, out, "auto", "--pivot-choice", str(choice)) == 0
    _, summary = _check_outputs(out, prompts)
    assert summary["budget"] == "auto" and summary["triage"]["auto_method"] == "otsu"
    assert summary["pivot"]["tau"] == 1.5 and summary["options"]["pivot_choice"] == str(choice)


@pytest.mark.parametrize("row, words", [
    ({"id": "x", "question": "a = 1 , a ?"}, ["row 2", "missing field 'prompt'"]),
    ({"id": "x", "prompt": "a = 1 , a ?", "answer": "1"}, ["row 2", "'answer'", "drop"]),
    ({"id": "x", "prompt": "  "}, ["row 2", "'prompt' is empty"]),
    ({"id": "a", "prompt": "a = 1 , a ?"}, ["row 2", "duplicate id 'a'"]),
    ({"id": "x", "prompt": "a = 1 , a ?", "difficulty": "hard"}, ["row 2", "'difficulty'"]),
])
def test_triage_bad_input(tiny, tmp_path, capsys, row, words):
    bad = _write(tmp_path / "bad.jsonl", [{"id": "a", "prompt": "a = 2 , a ?"}, row])
    assert _triage(tiny, bad, tmp_path / "out", "0.5") == 2
    err = capsys.readouterr().err
    assert "pivottrace triage: error:" in err and str(bad) in err
    for w in words:
        assert w in err
    assert not (tmp_path / "out").exists()


def test_triage_missing_model_and_bad_budget(tiny, prompts, tmp_path, capsys):
    rc = main(["triage", "--model", str(tmp_path / "nope"), "--prompts", str(prompts),
               "--budget", "0.3", "--out", str(tmp_path / "out")])
    assert rc == 2 and "model directory not found" in capsys.readouterr().err
    assert _triage(tiny, prompts, tmp_path / "out", "1.5") == 2
    assert "budget" in capsys.readouterr().err
    assert _triage(tiny, prompts, tmp_path / "out", "0.3", "--verifier", "nope") == 2
    assert "unknown verifier" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_load_prompts_fields(tmp_path):
    path = _write(tmp_path / "p.jsonl", [{"q": "one", "key": 7, "difficulty": 2}, "",
                                         {"q": "two", "other": 1}])
    pool = load_prompts(path, prompt_field="q", id_field="key")
    assert pool.ids == ("7", "row-3")  # int ids as text; default ids by 1-based line
    assert [it.difficulty for it in pool] == [2, 0]
    clash = _write(tmp_path / "c.jsonl", [{"prompt": "one"}, {"id": "row-1", "prompt": "two"}])
    with pytest.raises(DataError, match=r"row 2: field 'id': duplicate id 'row-1' \(first at row 1\)"):
        load_prompts(clash)
    with pytest.raises(DataError, match="label field"):
        load_prompts(path, prompt_field="solution")


def test_render_prompt_chat_template():
    from pivottrace.testbed.reasoner import build_tokenizer

    tok = build_tokenizer(["a", "="])
    assert render_prompt(tok, "a = 1") == "a = 1"  # no template: as is
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %} <assistant>{% endif %}")
    assert render_prompt(tok, "a = 1") == "<user> a = 1 <assistant>"
    assert render_prompt(tok, "a = 1", chat_template=False) == "a = 1"
