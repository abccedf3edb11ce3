"""configs/paper.yaml keeps resolving: `snakemake -n` against a tiny stand-in model and data.

The stand-ins live under ``local/`` of a temporary working directory, exactly where
configs/paper.yaml expects the real files, so the config is tested as written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pivottrace.core.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "configs" / "paper.yaml"
PROFILE = REPO / "profiles" / "slurm"
FIXTURES = REPO / "tests" / "fixtures"

MATH_TRAIN = [
    {"problem": "What is $1+1$?", "solution": "We add: $1+1=\\boxed{2}$.", "level": "Level 1",
     "type": "Prealgebra"},
    {"problem": "Simplify $\\frac{2}{4}$.", "solution": "Divide: $\\boxed{\\frac{1}{2}}$",
     "level": "Level 2", "type": "Algebra"},
    {"problem": "What is $3 \\cdot 3$?", "solution": "So $\\boxed{9}$.", "level": "Level 1",
     "type": "Prealgebra"},
    {"problem": "Solve $x+2=5$.", "solution": "$x=\\boxed{3}$", "level": "Level 2",
     "type": "Algebra"},
    {"problem": "What is $10-4$?", "solution": "$\\boxed{6}$", "level": "Level ?",
     "type": "Prealgebra"},
    {"problem": "Compute $2^3$.", "solution": "$2^3=\\boxed{8}$", "level": "Level 3",
     "type": "Algebra"},
]
MATH500 = [
    {"problem": "What is $2+2$?", "solution": "$\\boxed{4}$", "answer": "4", "subject": "Prealgebra",
     "level": 1, "unique_id": "test/prealgebra/1.json"},
    {"problem": "Compute $\\sqrt{16}$.", "solution": "$\\boxed{4}$", "answer": "4",
     "subject": "Algebra", "level": 2, "unique_id": "test/algebra/2.json"},
]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A working directory with local/ stand-ins for every file configs/paper.yaml names."""
    from pivottrace.testbed.reasoner import build_model, build_tokenizer

    wd = tmp_path_factory.mktemp("paper")
    write_jsonl(wd / "local/data/math/train.jsonl", MATH_TRAIN)
    write_jsonl(wd / "local/data/math500/test.jsonl", MATH500)
    comp = wd / "local/data/competition"
    comp.mkdir(parents=True)
    shutil.copy(FIXTURES / "aime24_sample.jsonl", comp / "aime24.jsonl")
    shutil.copy(FIXTURES / "amc23_sample.jsonl", comp / "amc23.jsonl")
    tok = build_tokenizer([str(i) for i in range(10)] + ["+", "=", "?"])
    model = build_model(tok, {"hidden_size": 16, "intermediate_size": 32, "num_layers": 2,
                              "num_heads": 2, "max_position_embeddings": 64}, seed=0)
    model.save_pretrained(wd / "local/models/Qwen2.5-Math-1.5B")
    tok.save_pretrained(wd / "local/models/Qwen2.5-Math-1.5B")
    # the paper config keeps 200 dev rows from the pool; the stand-in pool has 6
    (wd / "tiny.yaml").write_text("task:\n  math:\n    dev_from_pool: 2\n")
    return wd


def snakemake(wd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(wd),
         *args, "--configfile", str(PAPER), str(wd / "tiny.yaml")],
        capture_output=True, text=True, env=env, timeout=300)


def test_paper_config_validates_and_needs_its_keys(tmp_path):
    cfg = load_config(PAPER)
    assert cfg["task"]["name"] == "math" and cfg["model"]["path"]
    assert cfg["grpo"]["launcher"].startswith("accelerate launch")
    bad = yaml.safe_load(PAPER.read_text())
    del bad["model"]["path"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="model.path"):
        load_config(tmp_path / "bad.yaml")
    bad = yaml.safe_load(PAPER.read_text())
    bad["grpo"]["use_vllm"] = "maybe"
    (tmp_path / "bad2.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="use_vllm"):
        load_config(tmp_path / "bad2.yaml")


def test_paper_dag_dry_run(workdir):
    proc = snakemake(workdir, "-n", "-p", "--cores", "4", "results/table1.csv")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.M))
    cfg = load_config(PAPER)
    exp = cfg["experiment"]
    assert int(counts["data"]) == 1 and int(counts["base_model"]) == 1
    assert int(counts["train"]) > len(exp["seeds"]) * len(exp["methods"])  # budgets x seeds
    # the launcher prefix reaches the train command line, and the data rule reads the sources
    assert "accelerate launch --num_processes 4 -m pivottrace.cli" in out
    assert "local/data/math/train.jsonl" in out and "local/models/Qwen2.5-Math-1.5B" in out


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="a real SLURM cluster is reachable")
def test_paper_dag_dry_run_with_slurm_profile(workdir):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    proc = snakemake(workdir, "-n", "-p", "--workflow-profile", str(PROFILE), "results/table1.csv")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs = re.split(r"\n(?=\[[^\n]*\]\nrule |rule )", out)
    train = next(j for j in jobs if re.search(r"^rule train:", j, flags=re.M))
    score = next(j for j in jobs if re.search(r"^rule score:", j, flags=re.M))
    select = next(j for j in jobs if re.search(r"^rule select:", j, flags=re.M))
    assert re.search(r"resources:.*\bgpu=4\b", train) and "slurm_partition=gpu" in train
    assert re.search(r"resources:.*\bgpu=1\b", score)
    assert "gpu=" not in select and "slurm_partition=cpu" in select
    assert "PIVOTTRACE_THREADS=32 accelerate launch" in train  # set-threads, not capped at 1


def test_profile_names_only_existing_rules():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    rules = set(re.findall(r"^rule (\w+):", (REPO / "Snakefile").read_text(), flags=re.M))
    for key in ("set-resources", "set-threads"):
        assert set(profile[key]) <= rules, set(profile[key]) - rules
    assert profile["executor"] == "slurm"


def test_paper_data_and_base_model_from_local_files(workdir):
    """make-data and build-base of the paper config run for real on the stand-ins."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cfgs = ["--config", str(PAPER), "--config", str(workdir / "tiny.yaml")]
    for verb in (["make-data", "--out", "data"], ["build-base", "--data", "data", "--out", "models/base"]):
        proc = subprocess.run([sys.executable, "-m", "pivottrace.cli", *cfgs, *verb], cwd=workdir,
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    data = workdir / "data"
    pool = [json.loads(x) for x in (data / "pool.jsonl").read_text().splitlines()]
    gold = {r["id"]: r["answer"] for r in map(json.loads, (data / "pool_gold.jsonl").read_text().splitlines())}
    dev = [json.loads(x) for x in (data / "dev.jsonl").read_text().splitlines()]
    hard = [json.loads(x) for x in (data / "test_hard.jsonl").read_text().splitlines()]
    assert len(pool) == 4 and len(dev) == 2 and all("answer" not in r for r in pool)
    assert set(gold) == {r["id"] for r in pool}
    by_prompt = {r["problem"]: r for r in MATH_TRAIN}
    answers = {"2", "\\frac{1}{2}", "9", "3", "6", "8"}
    assert set(gold.values()) | {r["answer"] for r in dev} == answers  # boxed answers extracted
    assert all(r["prompt"].startswith("Problem: ") and "\\boxed{}" in r["prompt"] for r in pool)
    assert {r["difficulty"] for r in pool + dev} <= {0, 1, 2, 3} and len(by_prompt) == 6
    assert {r["id"].split("-")[0] for r in hard} == {"aime24", "amc23"}
    assert all(r["difficulty"] == 6 for r in hard)
    assert (workdir / "models/base/config.json").is_file()
    assert json.loads((workdir / "models/base/build.json").read_text())["linked"] is True


def test_missing_model_directory_fails_clearly(workdir, tmp_path):
    other = tmp_path / "wd"
    shutil.copytree(workdir / "local" / "data", other / "local" / "data")
    shutil.copy(workdir / "tiny.yaml", other / "tiny.yaml")
    proc = snakemake(other, "-n", "--cores", "1", "results/table1.csv")
    assert proc.returncode != 0
    assert "local/models/Qwen2.5-Math-1.5B" in proc.stdout + proc.stderr
