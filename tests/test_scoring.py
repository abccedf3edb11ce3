"""Pool scoring: columns, determinism, label firewall, estimator formulas, tracer consistency."""

from __future__ import annotations

import ast
import json
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from pivottrace.data.pool import load_pool
from pivottrace.labeled.oracle import AnnotationOracle
from pivottrace.labeled.oracle_scores import pass_rates_and_learnability, write_oracle_scores
from pivottrace.method import scoring
from pivottrace.method.estimators import majority_disagreement, token_entropy_and_self_certainty
from pivottrace.method.pivots import dynamics_score, find_pivots, trace_density
from pivottrace.method.scoring import SCORE_COLUMNS, score_and_write, score_pool, scoring_config
from pivottrace.method.trace import trace_forced
from pivottrace.testbed import modchain
from pivottrace.testbed.reasoner import build_tokenizer

torch.set_num_threads(1)

OPS = ("+", "-", "*")
K = 3
CFG = {
    "task": {"name": "modchain", "verifier": "modchain"},
    "scoring": {"K": K, "max_new_tokens": 14, "batch_size": 7, "temperature": 0.8,
                "layers": "all", "score": "shift", "tau": 2.0, "window": 1, "min_tokens": 4,
                "seed": 0},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny random Qwen2 saved as a HF directory, a 6-prompt pool and its gold file apart."""
    root = tmp_path_factory.mktemp("scoring")
    tok = build_tokenizer(modchain.vocabulary(10, OPS, 8))
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
        initializer_range=0.2, tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        attn_implementation="sdpa")).eval()
    model_dir = root / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    problems = modchain.generate_split(random.Random(0), 6, 2, 4, 10, OPS, set())
    data = root / "data"
    data.mkdir()
    (data / "pool.jsonl").write_text("".join(
        json.dumps({"id": f"pool-{i:05d}", "prompt": p.prompt, "difficulty": p.difficulty}) + "\n"
        for i, p in enumerate(problems)))
    gold_dir = root / "gold"  # not beside the pool: scoring must not need it
    gold_dir.mkdir()
    (gold_dir / "pool_gold.jsonl").write_text("".join(
        json.dumps({"id": f"pool-{i:05d}", "answer": p.answer}) + "\n"
        for i, p in enumerate(problems)))
    return {"root": root, "model_dir": model_dir, "pool_path": data / "pool.jsonl",
            "gold": gold_dir / "pool_gold.jsonl", "model": model, "tok": tok}


@pytest.fixture(scope="module")
def scored(world):
    pool = load_pool(world["pool_path"])
    scores, traces = score_pool((world["model"], world["tok"]), pool, CFG, progress=False,
                                return_stats=True)
    return pool, scores, traces


def test_shapes_columns_and_no_label_column(scored):
    pool, scores, traces = scored
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert list(scores["id"]) == list(pool.ids)
    assert len(traces) == len(pool) * K
    assert [(t["id"], t["k"]) for t in traces] == [(i, k) for i in pool.ids for k in range(K)]
    for col in SCORE_COLUMNS[1:]:
        assert np.isfinite(scores[col]).all(), col
    assert (scores["neg_self_certainty"] == -scores["self_certainty"]).all()
    assert (scores["self_certainty"] >= 0).all() and (scores["mean_token_entropy"] >= 0).all()
    assert scores["majority_disagreement"].between(0, 1 - 1 / K).all()
    for t in traces:
        n = t["n_tokens"]
        assert len(t["token_ids"]) == len(t["shift"]) == len(t["dynamics_score"]) == n
        assert t["n_pivots"] == len(t["pivots"]) and t["density"] == t["n_pivots"] / n
        assert all(0 <= p < n for p in t["pivots"])
    label_words = ("answer", "gold", "pass", "oracle", "label", "correct")
    assert not any(w in c for c in scores.columns for w in label_words)
    assert sum(t["n_pivots"] for t in traces) > 0  # the consistency test below is not vacuous


def test_determinism_and_files(world, tmp_path):
    out = [(tmp_path / f"s{i}.csv", tmp_path / f"t{i}.jsonl") for i in range(3)]
    score_and_write(CFG, world["model_dir"], world["pool_path"], *out[0])
    score_and_write(CFG, world["model_dir"], world["pool_path"], *out[1])
    other = {**CFG, "scoring": {**CFG["scoring"], "seed": 1}}
    score_and_write(other, world["model_dir"], world["pool_path"], *out[2])
    assert out[0][0].read_bytes() == out[1][0].read_bytes()
    assert out[0][1].read_bytes() == out[1][1].read_bytes()
    assert out[0][1].read_bytes() != out[2][1].read_bytes()
    df = pd.read_csv(out[0][0], dtype={"id": str})
    assert list(df.columns) == list(SCORE_COLUMNS)
    row = json.loads(out[0][1].read_text().splitlines()[0])
    assert {"id", "k", "completion", "n_tokens", "n_pivots", "pivots", "density", "shift",
            "answer", "token_ids"} <= set(row)
    assert "stats" not in row and "score_array" not in row
    assert all(x == round(x, 5) for x in row["shift"])
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes left no temp files


def test_scoring_does_not_import_the_oracle_at_module_level():
    tree = ast.parse(Path(scoring.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    mods = {getattr(n, "module", None) or "" for n in top} | {
        a.name for n in top if isinstance(n, ast.Import) for a in n.names}
    assert not any("oracle" in m for m in mods)


def test_self_certainty_hand_computation():
    h, sc = token_entropy_and_self_certainty(torch.zeros(2, 7))  # uniform
    assert torch.allclose(sc, torch.zeros(2), atol=1e-6)
    assert torch.allclose(h, torch.full((2,), math.log(7)), atol=1e-6)
    p = torch.tensor([0.5, 0.25, 0.125, 0.125])
    h, sc = token_entropy_and_self_certainty(p.log())
    kl = sum(0.25 * math.log(0.25 / float(q)) for q in p)  # KL(U || p)
    assert abs(float(sc) - kl) < 1e-6
    assert abs(float(h) - 1.75 * math.log(2)) < 1e-6
    assert abs(kl - (-math.log(4) - sum(math.log(float(q)) for q in p) / 4)) < 1e-12  # identity


def test_majority_disagreement_by_hand():
    assert majority_disagreement(["4", "4", "4"]) == 0.0
    assert majority_disagreement(["4", "4", "1"]) == pytest.approx(1 / 3)
    assert majority_disagreement(["4", None, None]) == pytest.approx(2 / 3)
    assert majority_disagreement([None, None, None]) == pytest.approx(2 / 3)
    assert majority_disagreement(["1", "2", "3", "1", None, None]) == pytest.approx(4 / 6)


def test_tracer_matches_teacher_forced_and_logits_are_raw(world, scored):
    """Densities from generation == trace_forced + trace_density; entropy is of T=1 logits."""
    pool, _, traces = scored
    model, tok = world["model"], world["tok"]
    sc = scoring_config(CFG)
    prompts = dict(zip(pool.ids, (it.prompt for it in pool)))
    for t in traces:
        p_ids = tok(prompts[t["id"]], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids + t["token_ids"]])
        forced = trace_forced(model, ids, None, [len(p_ids)], layers=sc["layers"])[0]
        score = dynamics_score(forced, score=sc["score"])
        np.testing.assert_allclose(score, t["score_array"], atol=1e-6, rtol=0)
        piv = find_pivots(score, tau=sc["tau"], window=sc["window"], min_tokens=sc["min_tokens"])
        assert piv.tolist() == t["pivots"]
        dens = trace_density(forced, score=sc["score"], tau=sc["tau"], window=sc["window"],
                             min_tokens=sc["min_tokens"])
        assert dens == t["density"]
        with torch.no_grad():
            logits = model(ids).logits[0, len(p_ids) - 1:len(p_ids) - 1 + t["n_tokens"]]
        h, c = token_entropy_and_self_certainty(logits)
        assert abs(float(h.double().mean()) - t["mean_token_entropy"]) < 1e-5
        assert abs(float(c.double().mean()) - t["self_certainty"]) < 1e-5


def test_oracle_learnability_by_hand(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "answer": "7"}\n{"id": "b", "answer": "2"}\n')
    traces = [{"id": "a", "completion": c} for c in ("x = 7 # 7", "# 7", "# 3", "no answer")]
    traces += [{"id": "b", "completion": "# 2"}, {"id": "b", "completion": "# 2"}]
    oracle = AnnotationOracle(gold, max_queries=2)
    df = pass_rates_and_learnability(traces, oracle)
    assert list(df.columns) == ["id", "oracle_learnability", "pass_rate"]
    assert df.set_index("id")["pass_rate"].to_dict() == {"a": 0.5, "b": 1.0}
    assert df.set_index("id")["oracle_learnability"].to_dict() == {"a": 0.25, "b": 0.0}
    assert oracle.n_annotated == 2


def test_write_oracle_scores(world, tmp_path):
    csv, jl = tmp_path / "s.csv", tmp_path / "t.jsonl"
    score_and_write(CFG, (world["model"], world["tok"]), world["pool_path"], csv, jl)
    out = tmp_path / "pool_oracle.csv"
    df = write_oracle_scores(CFG, jl, world["gold"], out)
    back = pd.read_csv(out, dtype={"id": str})
    assert list(back.columns) == ["id", "oracle_learnability", "pass_rate"]
    assert list(back["id"]) == list(pd.read_csv(csv, dtype={"id": str})["id"])
    np.testing.assert_allclose(back["oracle_learnability"],
                               back["pass_rate"] * (1 - back["pass_rate"]))
    assert len(df) == 6 and back["pass_rate"].between(0, 1).all()


def test_config_defaults_and_errors():
    assert scoring_config(None) == scoring.DEFAULT_SCORING
    assert set(scoring.DEFAULT_SCORING) == {"K", "max_new_tokens", "batch_size", "temperature",
                                            "layers", "score", "tau", "window", "min_tokens",
                                            "seed"}
    with pytest.raises(ValueError, match=r"key 'scoring'.*'k' was unexpected"):
        scoring_config({"scoring": {"k": 3}})
    # bounds come from the schema alone: K >= 2 there (majority agreement needs several traces)
    with pytest.raises(ValueError, match=r"key 'scoring.K': 1 is less than the minimum of 2"):
        scoring_config({"scoring": {"K": 1}})
    with pytest.raises(ValueError, match=r"key 'scoring.score'"):
        scoring_config({"scoring": {"score": "nope"}})
    with pytest.raises(ValueError, match=r"key 'scoring.window'"):
        scoring_config({"scoring": {"window": -1}})
    import yaml

    from pivottrace.core.config import SCHEMA_PATH

    schema = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]["scoring"]
    assert set(schema["required"]) == set(scoring.DEFAULT_SCORING)
    with pytest.raises(TypeError, match="UnlabeledPool"):
        score_pool(("m", "t"), [{"id": "a", "prompt": "p"}], CFG)
