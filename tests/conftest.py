"""Shared fixtures: the smoke DAG run (once per session) and a tiny data + base model."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"

# Tiny setup for resume/atomic/manifest tests: the smoke model, a 2-step warm start.
TINY_OVERRIDES = {
    "task": {"splits": {"sft": {"n": 32, "min_steps": 1, "max_steps": 3}}},
    "sft": {"max_steps": 2, "batch_size": 8, "warmup_steps": 0},
}


def subprocess_env(**extra: str) -> dict:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)


def run_snakemake(workdir: Path, *targets: str, extra: tuple[str, ...] = (),
                  configfiles: tuple[Path, ...] = (SMOKE,)) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", *targets, "-s", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--cores", "2", *extra,
           "--configfile", *map(str, configfiles)]
    return subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), timeout=900)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The whole smoke DAG, run once per session (tests/test_smoke_dag.py, test_determinism.py)."""
    workdir = tmp_path_factory.mktemp("smoke")
    proc = run_snakemake(workdir, "results/table1.csv", "results/base_model.json",
                         "results/calibration.csv")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Smoke-sized data and a 2-step base model built in-process (a few seconds).

    Returns a dict: ``root``, ``config`` (YAML path for ``pivottrace --config``),
    ``cfg`` (resolved config), ``data`` and ``model`` directories.
    """
    from pivottrace.core.config import deep_merge, load_config
    from pivottrace.testbed.build import build_base
    from pivottrace.testbed.data import make_modchain

    root = tmp_path_factory.mktemp("tiny")
    smoke = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(deep_merge(smoke, TINY_OVERRIDES)), encoding="utf-8")
    cfg = load_config(config)
    make_modchain(cfg["task"], root / "data")
    build_base(cfg, root / "data", root / "models" / "base")
    return {"root": root, "config": config, "cfg": cfg, "data": root / "data",
            "model": root / "models" / "base"}


@pytest.fixture(scope="session")
def mixed_plan(tiny, tmp_path_factory) -> Path:
    """A plan over the tiny pool: half annotated (gold reward), half self-rewarded (majority)."""
    from pivottrace.data.pool import Plan, load_pool, write_plan

    pool = load_pool(tiny["data"] / "pool.jsonl")
    routes = {pid: ("annotate" if k % 2 == 0 else "self") for k, pid in enumerate(pool.ids)}
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    write_plan(Plan("random", 0.5, 0, False, "majority", routes, {}), path)
    return path


def train_outputs(out: Path) -> dict[str, Path]:
    """The three outputs of rule ``train`` under ``out``."""
    return {"model": out / "model", "summary": out / "train.json", "ledger": out / "ledger.json"}


@pytest.fixture(scope="session")
def grpo_run(tiny, mixed_plan, tmp_path_factory) -> Path:
    """One uninterrupted GRPO run (``run_training``, seed 0) on the tiny setup.

    Returns its root: ``work/`` (checkpoints 2 and 4 of max_steps 4) and ``out/``
    (model, train.json, ledger.json).
    """
    from pivottrace.rl.train import run_training

    root = tmp_path_factory.mktemp("grpo_run")
    o = train_outputs(root / "out")
    run_training(tiny["cfg"], mixed_plan, tiny["data"], tiny["model"], 0, root / "work",
                 o["model"], o["summary"], o["ledger"])
    return root
