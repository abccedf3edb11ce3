# PivotTrace reproduction suite: the DAG (DESIGN.md section 5).
#   snakemake --cores all results/table1.csv                      # default config
#   snakemake --cores 2 --configfile configs/smoke.yaml results/table1.csv
# Every rule calls one `pivottrace <verb>`; runs are keyed {method}/{budget}/{seed}.
import os

from snakemake.utils import min_version, validate

from pivottrace.config import config_hash, validate as validate_cross_fields
from pivottrace.workflow import BUDGET_RE, grid_runs, scores_input, write_resolved_config

min_version("9.0")


configfile: os.path.join(workflow.basedir, "configs/default.yaml")


validate(config, os.path.join(workflow.basedir, "pivottrace/schema.yaml"))
validate_cross_fields(config, source="snakemake config")

CFG = write_resolved_config(config, "runs/config")
PT = f"pivottrace --config {CFG}"
RUN = "runs/{method}/{budget}/{seed}"
DATA = ["pool.jsonl", "pool_gold.jsonl", "dev.jsonl", "test.jsonl", "test_hard.jsonl", "sft.jsonl"]


def section_hash(*keys):
    return config_hash({k: config[k] for k in keys})


wildcard_constraints:
    method="[a-z_]+",
    budget=BUDGET_RE,
    seed=r"\d+",


rule all:
    input:
        "results/table1.csv",
        "results/base_model.json",
        "results/calibration.csv",


rule data:
    output:
        expand("data/{f}", f=DATA),
        manifest="data/manifest.json",
    params:
        h=section_hash("task"),
    log:
        "logs/data.log",
    benchmark:
        "benchmarks/data.tsv"
    shell:
        "{PT} make-data --out data > {log} 2>&1"


rule base_model:
    input:
        "data/sft.jsonl",
    output:
        directory("models/base"),
    params:
        h=section_hash("task", "model", "sft", "seed"),
    threads: workflow.cores
    log:
        "logs/base_model.log",
    benchmark:
        "benchmarks/base_model.tsv"
    shell:
        "PIVOTTRACE_THREADS={threads} {PT} build-base --data data --out {output} > {log} 2>&1"


rule base_report:
    input:
        model="models/base",
        pool="data/pool.jsonl",
    output:
        "results/base_model.json",
    params:
        h=section_hash("base_report", "seed"),
    threads: workflow.cores
    log:
        "logs/base_report.log",
    benchmark:
        "benchmarks/base_report.tsv"
    shell:
        "PIVOTTRACE_THREADS={threads} {PT} base-report --model {input.model} --data data --out {output} > {log} 2>&1"


rule score:
    input:
        model="models/base",
        pool="data/pool.jsonl",
    output:
        scores="results/scores/pool_scores.csv",
        traces="results/scores/pool_traces.jsonl",
    params:
        h=section_hash("scoring", "task"),
    threads: workflow.cores
    log:
        "logs/score.log",
    benchmark:
        "benchmarks/score.tsv"
    shell:
        "PIVOTTRACE_THREADS={threads} {PT} score --model {input.model} --pool {input.pool} "
        "--out {output.scores} --traces {output.traces} > {log} 2>&1"


rule oracle_scores:
    input:
        traces="results/scores/pool_traces.jsonl",
        gold="data/pool_gold.jsonl",
    output:
        "results/scores/pool_oracle.csv",
    log:
        "logs/oracle_scores.log",
    shell:
        "{PT} oracle-scores --traces {input.traces} --gold {input.gold} --out {output} > {log} 2>&1"


rule calibration:
    input:
        scores="results/scores/pool_scores.csv",
        oracle="results/scores/pool_oracle.csv",
    output:
        csv="results/calibration.csv",
        bins="results/calibration_bins.csv",
        fig="paper_figures/calibration.png",
    log:
        "logs/calibration.log",
    shell:
        "{PT} calibration --scores {input.scores} --oracle {input.oracle} --out {output.csv} "
        "--out-bins {output.bins} --figure paper_figures/calibration > {log} 2>&1"


rule select:
    input:
        pool="data/pool.jsonl",
        scores=lambda w: scores_input(w.method),
    params:
        scores=lambda w, input: f"--scores {input.scores}" if input.scores else "",
    output:
        RUN + "/plan.json",
    log:
        "logs/" + RUN + "/select.log",
    benchmark:
        "benchmarks/" + RUN + "/select.tsv"
    shell:
        "{PT} select --method {wildcards.method} --budget {wildcards.budget} "
        "--seed {wildcards.seed} --pool {input.pool} {params.scores} --out {output} > {log} 2>&1"


rule train:
    input:
        plan=RUN + "/plan.json",
        model="models/base",
        data=expand("data/{f}", f=DATA),
    output:
        model=directory(RUN + "/model"),
        summary=RUN + "/train.json",
        ledger=RUN + "/ledger.json",
    params:
        h=section_hash("grpo"),
        work=RUN + "/ckpt",
    threads: workflow.cores
    log:
        "logs/" + RUN + "/train.log",
    benchmark:
        "benchmarks/" + RUN + "/train.tsv"
    shell:
        "PIVOTTRACE_THREADS={threads} {PT} train --plan {input.plan} --data data "
        "--model {input.model} --seed {wildcards.seed} --work {params.work} "
        "--out-model {output.model} --summary {output.summary} --ledger {output.ledger} > {log} 2>&1"


def eval_model(w):
    return "models/base" if w.method == "base" else f"runs/{w.method}/{w.budget}/{w.seed}/model"


rule evaluate:
    input:
        model=eval_model,
        test="data/test.jsonl",
        test_hard="data/test_hard.jsonl",
    output:
        RUN + "/eval.json",
    params:
        h=section_hash("eval"),
    threads: workflow.cores
    log:
        "logs/" + RUN + "/evaluate.log",
    benchmark:
        "benchmarks/" + RUN + "/evaluate.tsv"
    shell:
        "PIVOTTRACE_THREADS={threads} {PT} evaluate --model {input.model} --data data "
        "--out {output} > {log} 2>&1"


def record_inputs(w):
    run = f"runs/{w.method}/{w.budget}/{w.seed}"
    files = [f"{run}/eval.json", "data/pool.jsonl"]
    if w.method != "base":
        files += [f"{run}/plan.json", f"{run}/ledger.json", f"{run}/train.json"]
    return files


rule record:
    input:
        record_inputs,
    output:
        RUN + "/record.json",
    log:
        "logs/" + RUN + "/record.log",
    shell:
        "{PT} record --method {wildcards.method} --budget {wildcards.budget} "
        "--seed {wildcards.seed} --run-dir runs/{wildcards.method}/{wildcards.budget}/{wildcards.seed} "
        "--pool data/pool.jsonl --out {output} > {log} 2>&1"


rule table:
    input:
        [f"runs/{m}/{b}/{s}/record.json" for m, b, s in grid_runs(config)],
    output:
        csv="results/table1.csv",
        md="results/table1.md",
    log:
        "logs/table.log",
    shell:
        "{PT} table --records {input} --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"
