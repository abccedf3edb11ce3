"""Where a Snakemake job's time went: per-rule totals from its ``benchmark:`` files.

Every rule of the Snakefile writes ``benchmarks/<rule>.tsv`` or
``benchmarks/runs/<method>/<budget>/<seed>/<rule>.tsv`` (Snakemake's columns:
``s`` wall seconds, ``cpu_time``, ``max_rss`` ...). This sums them per rule::

    python -m analysis.rule_times benchmarks            # markdown table on stdout
    python -m analysis.rule_times benchmarks --csv out.csv

Wall seconds of rules that ran side by side add up to more than the job's wall
time (two training jobs share the 2 cores). Snakemake's ``cpu_time`` is not
summed: it samples the process tree now and then and misses much of a short
job's CPU (on the reference run its sum was 5,102 s against the 6,725 s of user
and system time the shell's ``time`` measured for the whole job).
"""

from __future__ import annotations

import argparse
import sys
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
    a = p.parse_args(argv)
    try:
        per = rule_times(a.bench_dir)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(to_markdown(per))
    if a.csv:
        from pivottrace.core.io import atomic_write

        with atomic_write(Path(a.csv)) as fh:
            per.to_csv(fh, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
