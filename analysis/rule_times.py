"""Where a Snakemake job's time went: per-rule totals from its ``benchmark:`` files.

Every rule of the Snakefile writes ``benchmarks/<rule>.tsv`` or
``benchmarks/runs/<method>/<budget>/<seed>/<rule>.tsv`` (Snakemake's columns:
``s`` wall seconds, ``cpu_time``, ``max_rss`` ...). This sums them per rule::

    python -m analysis.rule_times benchmarks            # markdown table on stdout
    python -m analysis.rule_times benchmarks --csv out.csv
    python -m analysis.rule_times benchmarks --log .snakemake/log/<run>.snakemake.log --cores 2

With ``--log`` it also reads Snakemake's own log (each job's start and finish, to the
second, and its threads) and prints how many core-seconds stood idle while the job
ran, and which rules were running then: the part of the wall time a better layout
could win back, as against the work itself.

Wall seconds of rules that ran side by side add up to more than the job's wall
time (two training jobs share the 2 cores). Snakemake's ``cpu_time`` is not
summed: it samples the process tree now and then and misses much of a short
job's CPU (on the reference run its sum was 5,102 s against the 6,725 s of user
and system time the shell's ``time`` measured for the whole job).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import pandas as pd


def rule_times(bench_dir: str | Path) -> pd.DataFrame:
    """One row per rule: jobs, total and mean wall seconds, and the share of all rules' wall time.

    Raises:
        FileNotFoundError: no ``*.tsv`` under ``bench_dir``.
        ValueError: a file without Snakemake's ``s`` column (names the file).
    """
    files = sorted(Path(bench_dir).rglob("*.tsv"))
    if not files:
        raise FileNotFoundError(f"{bench_dir}: no Snakemake benchmark files (*.tsv)")
    rows = []
    for f in files:
        df = pd.read_csv(f, sep="\t")
        missing = {"s"} - set(df.columns)
        if missing or df.empty:
            raise ValueError(f"{f}: not a Snakemake benchmark file (missing {sorted(missing) or 'rows'})")
        rows.append({"rule": f.stem, "wall_s": float(df["s"].iloc[0])})
    per = pd.DataFrame(rows).groupby("rule").agg(jobs=("wall_s", "size"), wall_s=("wall_s", "sum"),
                                                 mean_wall_s=("wall_s", "mean"))
    per["share"] = per["wall_s"] / per["wall_s"].sum()
    return per.sort_values("wall_s", ascending=False).reset_index()


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?rule (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_THREADS = re.compile(r"^\s+threads: (\d+)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+)")


def job_spans(log_path: str | Path) -> pd.DataFrame:
    """Each job of a Snakemake log: ``jobid``, ``rule``, ``threads``, ``start``/``end`` seconds.

    Seconds count from the first job's start; Snakemake stamps to the second.
    Jobs without a ``Finished`` line (a run still going, or failed) are left out.

    Raises:
        FileNotFoundError: no such log.
        ValueError: no finished job in it (names the file).
    """
    stamp, rule, last = None, None, None
    jobs: dict[int, dict] = {}
    for line in Path(log_path).read_text().splitlines():
        if m := _STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := _RULE.match(line):
            rule = m.group(1)
        elif (m := _JOBID.match(line)) and rule is not None:
            last = int(m.group(1))
            jobs[last] = {"jobid": last, "rule": rule, "threads": 1, "start": stamp, "end": None}
        elif (m := _THREADS.match(line)) and last is not None:
            jobs[last]["threads"] = int(m.group(1))
        elif (m := _FINISHED.match(line)) and (job := jobs.get(int(m.group(1)))) is not None:
            job["end"] = stamp
    done = [j for j in jobs.values() if j["end"] is not None and j["start"] is not None]
    if not done:
        raise ValueError(f"{log_path}: no finished Snakemake job in this log")
    t0 = min(j["start"] for j in done)
    for j in done:
        j["start"], j["end"] = ((j[k] - t0).total_seconds() for k in ("start", "end"))
    return pd.DataFrame(done).sort_values("start").reset_index(drop=True)


def idle_cores(spans: pd.DataFrame, cores: int) -> tuple[int, Counter]:
    """Idle core-seconds over the log's span, and per set of running rules how many.

    A second counts ``cores`` minus the threads of the jobs running in it (never
    below 0). The counter's keys are the sorted rules running while cores stood idle
    (``()`` when nothing ran).

    Examples:
        >>> spans = pd.DataFrame({"rule": ["data", "a", "b"], "threads": [1, 1, 1],
        ...                       "start": [0.0, 2.0, 2.0], "end": [2.0, 5.0, 3.0]})
        >>> idle, by = idle_cores(spans, cores=2)
        >>> idle, by[("data",)], by[("a",)]
        (4, 2, 2)
    """
    length = int(spans["end"].max())
    busy = [0] * length
    running: list[list[str]] = [[] for _ in range(length)]
    for j in spans.itertuples():
        for t in range(int(j.start), int(j.end)):
            busy[t] += j.threads
            running[t].append(j.rule)
    by: Counter = Counter()
    for b, rules in zip(busy, running):
        if b < cores:
            by[tuple(sorted(set(rules)))] += cores - b
    return sum(by.values()), by


def to_markdown(per: pd.DataFrame) -> str:
    """The table as markdown, with a total row."""
    lines = ["| rule | jobs | wall s (sum) | wall s (mean) | share |", "|---|---|---|---|---|"]
    for r in per.itertuples():
        lines.append(f"| {r.rule} | {r.jobs} | {r.wall_s:,.0f} | {r.mean_wall_s:,.1f} | {r.share:.1%} |")
    lines.append(f"| all | {per['jobs'].sum()} | {per['wall_s'].sum():,.0f} | | 100% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.rule_times", description=__doc__.split("\n")[0])
    p.add_argument("bench_dir", nargs="?", default="benchmarks")
    p.add_argument("--csv", default=None, help="also write the table as CSV")
    p.add_argument("--log", default=None,
                   help="Snakemake's log of the run (.snakemake/log/*.log): also print idle core-seconds")
    p.add_argument("--cores", type=int, default=2, help="cores the run had (with --log; default 2)")
    a = p.parse_args(argv)
    try:
        per = rule_times(a.bench_dir)
        spans = job_spans(a.log) if a.log else None
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(to_markdown(per))
    if spans is not None:
        idle, by = idle_cores(spans, a.cores)
        length = spans["end"].max()
        print(f"\nSnakemake log: {len(spans)} jobs over {length:,.0f} s on {a.cores} cores; "
              f"idle {idle:,} core-s ({idle / (a.cores * length):.1%} of {a.cores * length:,.0f}). "
              "Idle while running:")
        for rules, n in by.most_common():
            print(f"- {', '.join(rules) or 'nothing'}: {n:,} core-s")
    if a.csv:
        from pivottrace.core.io import atomic_write

        with atomic_write(Path(a.csv)) as fh:
            per.to_csv(fh, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
