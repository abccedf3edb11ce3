"""Task ``wordproblems`` (pivottrace/data/wordproblems.py) and configs/smollm2.yaml's DAG.

Generation is exact and seeded, problems are distinct across splits, prompts go through
the chat model's template, the data directory passes the suite's checks, bad config
fails early, and the real-LM calibration DAG resolves (``snakemake -n``) without the model.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pivottrace.core.config import ConfigError, load_config
from pivottrace.core.io import DataError, read_jsonl
from pivottrace.data.real import verify_gsm8k
from pivottrace.data.wordproblems import chat_renderer, draw_split, make_problem, make_wordproblems

REPO = Path(__file__).resolve().parents[1]
SMOLLM2 = REPO / "configs" / "smollm2.yaml"
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def _solve(text: str) -> int:
    """An independent solver of the generated English (the grammar of the generator)."""
    import re

    if text.startswith("What is "):
        tokens = text[len("What is "):-1].split()
        value = int(tokens[0])
        for op, x in zip(tokens[1::2], tokens[2::2]):
            value = {"+": value + int(x), "-": value - int(x), "*": value * int(x)}[op]
        return value
    sentences = re.split(r"(?<=[.?])\s", text)
    value = int(re.search(r"has (\d+)", sentences[0]).group(1))
    for s in sentences[1:-1]:
        if "doubles" in s:
            value *= 2
        elif "triples" in s:
            value *= 3
        elif "times as many" in s:
            value *= int(re.search(r"(\d+) times", s).group(1))
        elif re.search(r"\b(buys|finds|gives \w+) (\d+) more\b", s):
            value += int(re.search(r"(\d+) more", s).group(1))
        else:
            value -= int(re.search(r"(?:gives|loses|sells) (\d+)", s).group(1))
    return value


@pytest.mark.parametrize("kind", ["story", "bare"])
@pytest.mark.parametrize("ops,max_number", [(1, 5), (2, 9), (3, 20)])
def test_gold_answer_is_exact(kind, ops, max_number):
    rng = random.Random(f"{kind}{ops}{max_number}")
    for _ in range(200):
        p = make_problem(rng, ops, max_number, kind)
        assert p.value >= 0
        assert _solve(p.text) == p.value, p.text
        assert verify_gsm8k(f"so the answer is {p.value}.", p.answer)
        assert not verify_gsm8k(f"so the answer is {p.value + 1}.", p.answer)


def test_bad_level_and_kind():
    with pytest.raises(ValueError, match="ops >= 1"):
        make_problem(random.Random(0), 0, 9)
    with pytest.raises(ValueError, match="unknown problem kind"):
        make_problem(random.Random(0), 1, 9, "poem")


def test_splits_are_distinct_and_balanced():
    taken: set[str] = set()
    levels = [{"ops": 1, "max_number": 9, "kind": "bare"}, {"ops": 2, "max_number": 9}]
    a = draw_split(random.Random(0), 40, levels, taken)
    b = draw_split(random.Random(1), 40, levels, taken)
    texts = [p.text for p, _ in a + b]
    assert len(set(texts)) == 80
    assert [lvl for _, lvl in a].count(0) == 20
    with pytest.raises(ValueError, match="cannot draw"):
        draw_split(random.Random(0), 500, [{"ops": 1, "max_number": 2, "kind": "bare"}], set())


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory, tiny) -> Path:
    """The tiny testbed tokenizer with a chat template (a stand-in for the real model's)."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("chat_model")
    tok = AutoTokenizer.from_pretrained(tiny["model"])
    tok.chat_template = TEMPLATE
    tok.save_pretrained(out)
    return out


def _task(chat_model: Path, **extra) -> dict:
    cfg = load_config(SMOLLM2)
    task = cfg["task"]
    task["wordproblems"]["chat_model"] = str(chat_model)
    for name in ("pool", "dev", "test", "test_hard"):
        task["wordproblems"]["splits"][name]["n"] = 12
    task["wordproblems"].update(extra)
    return task


def test_make_data_through_chat_template(chat_model, tmp_path):
    from pivottrace.data.splits import validate_data_dir

    task = _task(chat_model)
    counts = make_wordproblems(task, tmp_path)
    assert counts == {"test": 12, "test_hard": 12, "dev": 12, "pool": 12, "sft": 0}
    validate_data_dir(tmp_path, task)  # no labels in the pool, disjoint, test_hard harder
    pool = read_jsonl(tmp_path / "pool.jsonl")
    assert set(pool[0]) == {"id", "prompt", "difficulty"}
    assert pool[0]["prompt"].startswith("<|system|>") or pool[0]["prompt"].startswith("<|user|>")
    assert pool[0]["prompt"].endswith("Answer with a number.<|end|><|assistant|>")
    dev = read_jsonl(tmp_path / "dev.jsonl")
    assert all(_solve(r["prompt"].split("<|user|>")[1].split("\n")[0]) == int(r["answer"]) for r in dev)
    hard = read_jsonl(tmp_path / "test_hard.jsonl")
    assert min(r["difficulty"] for r in hard) > max(r["difficulty"] for r in pool)
    again = tmp_path / "again"
    make_wordproblems(task, again)  # seeded: the same files
    assert (again / "pool.jsonl").read_bytes() == (tmp_path / "pool.jsonl").read_bytes()


def test_gsm8k_extra_source(chat_model, tmp_path):
    src = REPO / "tests" / "fixtures" / "gsm8k_sample.jsonl"
    task = _task(chat_model, gsm8k={"path": str(src), "max_steps": 3, "n": 2})
    counts = make_wordproblems(task, tmp_path)
    assert counts["pool"] == 14
    gold = {r["id"]: r["answer"] for r in read_jsonl(tmp_path / "pool_gold.jsonl")}
    assert sum(pid.startswith("gsm8k-") for pid in gold) == 2


def test_chat_model_without_template_fails(tiny, tmp_path):
    with pytest.raises(DataError, match="no chat template"):
        chat_renderer(tiny["model"])
    with pytest.raises(DataError, match="model directory not found"):
        chat_renderer(tmp_path / "missing")


def test_config_cross_checks(tmp_path):
    wrong_verifier = tmp_path / "verifier.yaml"
    wrong_verifier.write_text(yaml.safe_dump({"task": {"verifier": "math"}}))
    with pytest.raises(ConfigError, match="task.verifier"):
        load_config(SMOLLM2, wrong_verifier)
    no_model = yaml.safe_load(SMOLLM2.read_text())
    del no_model["model"]["path"]  # an empty path fails the schema; no path is the cross-check
    (tmp_path / "no_model.yaml").write_text(yaml.safe_dump(no_model))
    with pytest.raises(ConfigError, match="model.path"):
        load_config(tmp_path / "no_model.yaml")


def test_smollm2_calibration_dag_dry_run(tmp_path):
    """configs/smollm2.yaml resolves: the real-LM calibration study starts from the conversion."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "results/calibration.csv", "results/base_model.json",
         "results/pivot_alignment.csv", "-n", "-s", str(REPO / "Snakefile"), "--directory",
         str(tmp_path), "--cores", "2", "--configfile", str(SMOLLM2)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            jobs[parts[0]] = int(parts[1])
    for rule in ("smollm2", "data", "base_model", "tune_pivots", "score", "oracle_scores",
                 "calibration", "base_report", "alignment"):
        assert jobs.get(rule) == 1, (rule, proc.stdout[-2000:])
    assert "train" not in jobs
    resolved = json.loads(json.dumps(yaml.safe_load((tmp_path / "runs" / "config").read_text()))) \
        if (tmp_path / "runs" / "config").is_file() else None
    assert resolved is None or resolved["task"]["name"] == "wordproblems"


def test_linked_base_model_shares_no_snakemake_marker(tiny, tmp_path):
    """models/base linked from a rule's output directory must not share its timestamp file.

    Snakemake touches ``<dir>/.snakemake_timestamp`` of a directory output; a hard link of
    it into models/base made every touch of models/base also touch models/smollm2, so
    each later invocation reran the DAG from the data rule.
    """
    import os
    import shutil

    from pivottrace.testbed.build import link_base

    src = tmp_path / "smollm2"
    shutil.copytree(tiny["model"], src)
    (src / ".snakemake_timestamp").touch()
    os.utime(src / ".snakemake_timestamp", (1, 1))
    link_base(src, tmp_path / "base")
    assert not (tmp_path / "base" / ".snakemake_timestamp").exists()
    assert (tmp_path / "base" / "config.json").is_file()
    (tmp_path / "base" / ".snakemake_timestamp").touch()
    assert os.stat(src / ".snakemake_timestamp").st_mtime == 1


def test_smollm2_whole_grid_dry_run_with_gpu_overlay(tmp_path):
    """The same config with the GPU overlay resolves the whole grid: selection, GRPO, lm-eval."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "results/table1.csv", "-n", "-s", str(REPO / "Snakefile"),
         "--directory", str(tmp_path), "--cores", "16", "--configfile", str(SMOLLM2),
         str(REPO / "configs" / "gpu.yaml")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = {p[0]: int(p[1]) for p in (line.split() for line in proc.stdout.splitlines())
            if len(p) == 2 and p[1].isdigit()}
    cfg = load_config(SMOLLM2)
    e = cfg["experiment"]
    per_budget = {"full", "unsupervised"}
    n_runs = sum(len(e["seeds"]) * (1 if m in per_budget else len(e["budgets"])) for m in e["methods"])
    # each train job also evaluates its model (lm-eval); rule evaluate is the base model's
    assert jobs["train"] == n_runs and jobs["smollm2"] == 1 and jobs["evaluate"] == 1
