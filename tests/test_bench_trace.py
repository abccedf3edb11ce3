"""`pivottrace bench-trace` on tiny sizes: the printed table is self-consistent and its memory
columns match the attention maps eager generation must keep."""

from __future__ import annotations

import contextlib
import io
import math
import re

import pytest

from pivottrace.bench.trace import BenchConfig, Row, format_table
from pivottrace.cli import main

ROW = re.compile(
    r"^\s*(\d+) (plain|stream|eager)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+"
    r"(\S+)\s+(yes|no)$"
)
HALF = 0.0005  # every number of the table is printed with 3 decimals
MB = 2**20

# tiny sizes; the longest prompt is given first so that it is not the table's last block
LENGTHS, NEW, BATCH, LAYERS, HEADS = (48, 12), 4, 2, 2, 2


def _ratio_interval(num: float, den: float) -> tuple[float, float]:
    """Range of x / y for the true values behind two numbers printed to 3 decimals."""
    lo = (num - HALF) / (den + HALF)
    hi = (num + HALF) / (den - HALF) if den > HALF else math.inf
    return lo - HALF, hi + HALF  # the ratio itself is printed to 3 decimals


def _eager_attention_bytes(prompt: int) -> int:
    """float32 maps of ``generate(output_attentions=True)``: (B, H, P, P) at the prefill, then
    (B, H, 1, P + k) for the k-th new token after the first, per layer."""
    keys = prompt * prompt + sum(prompt + k for k in range(1, NEW))
    return LAYERS * BATCH * HEADS * 4 * keys


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.txt"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["bench-trace", "--prompt-lengths", ",".join(map(str, LENGTHS)),
                   "--new-tokens", str(NEW), "--batch-size", str(BATCH), "--repeats", "1",
                   "--hidden-size", "32", "--num-layers", str(LAYERS), "--num-heads", str(HEADS),
                   "--threads", "1", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    lines = buf.getvalue().strip().splitlines()
    rows = [m for m in map(ROW.match, lines) if m]
    by = {(int(r.group(1)), r.group(2)): r for r in rows}
    return {"lines": lines, "rows": rows, "by": by, "out": out}


def test_table_layout(bench):
    lines, rows = bench["lines"], bench["rows"]
    header = [ln for ln in lines if ln.startswith("# ")]
    assert any("retained_MB" in ln and "peak_MB" in ln for ln in header)
    assert any("RSS" in ln for ln in header)  # CPU run: says which peak it measures
    assert [(int(r.group(1)), r.group(2)) for r in rows] == [
        (n, v) for n in LENGTHS for v in ("plain", "stream", "eager")]
    written = bench["out"].read_text().strip().splitlines()  # --out: the table, as printed
    assert written[0].startswith("# bench-trace:") and written == lines[-len(written):]
    assert len(written) == 5 + len(rows) + 1


def test_last_line_is_stream_over_plain_wall_time_at_the_longest_prompt(bench):
    lines, by = bench["lines"], bench["by"]
    m = re.fullmatch(r"trace_overhead_ratio=(\d+\.\d{3})", lines[-1])
    assert m, lines[-1]
    ratio = float(m.group(1))
    longest = max(LENGTHS)
    stream, plain = float(by[longest, "stream"].group(3)), float(by[longest, "plain"].group(3))
    lo, hi = _ratio_interval(stream, plain)
    assert lo <= ratio <= hi, (ratio, stream, plain)
    assert by[longest, "stream"].group(4) == m.group(1)  # the ratio column of that same row


def test_ratio_columns_are_over_plain_at_the_same_length(bench):
    by = bench["by"]
    for n in LENGTHS:
        assert by[n, "plain"].group(4) == "1.000" and by[n, "plain"].group(6) == "1.000"
        for v in ("stream", "eager"):
            r = by[n, v]
            lo, hi = _ratio_interval(float(r.group(3)), float(by[n, "plain"].group(3)))
            assert lo <= float(r.group(4)) <= hi, (n, v, r.group(0))
            lo, hi = _ratio_interval(float(r.group(5)), float(by[n, "plain"].group(5)))
            assert lo <= float(r.group(6)) <= hi, (n, v, r.group(0))


def test_memory_columns(bench):
    by = bench["by"]
    for n in LENGTHS:
        assert float(by[n, "plain"].group(7)) == 0.0  # plain keeps no tracing state
        # eager keeps every attention map: exactly the bytes of the maps generate returns
        eager = float(by[n, "eager"].group(7))
        assert abs(eager - _eager_attention_bytes(n) / MB) <= HALF + 1e-9, (n, eager)
        peak = by[n, "stream"].group(8)
        assert peak == "n/a" or float(peak) >= 0.0
    # at the longest prompt the streaming tracer keeps a small fraction of eager's maps
    longest = max(LENGTHS)
    stream = float(by[longest, "stream"].group(7))
    eager = float(by[longest, "eager"].group(7))
    assert eager > 0.05 and stream + HALF < eager / 10, (stream, eager)


def test_tracing_does_not_change_the_rollouts(bench):
    for n in LENGTHS:
        assert bench["by"][n, "stream"].group(9) == "yes"
        assert bench["by"][n, "plain"].group(9) == "yes"


def _row(n, variant, times, cpu):
    return Row(n, variant, times=list(times), cpu_times=list(cpu))


@pytest.mark.parametrize("order", [(64, 16), (16, 64)])
def test_format_table_uses_median_wall_time_at_the_longest_length(order):
    bc = BenchConfig(prompt_lengths=order, repeats=3, device="cpu")
    by_len = {
        # median wall: plain 2.0, stream 5.0 -> 2.5 (the mean of stream would give 18.0)
        64: [_row(64, "plain", [1.0, 3.0, 2.0], [4.0, 4.0, 4.0]),
             _row(64, "stream", [5.0, 3.0, 46.0], [6.0, 6.0, 6.0]),  # cpu ratio 1.5
             _row(64, "eager", [9.0, 9.0, 9.0], [9.0, 9.0, 9.0])],
        16: [_row(16, "plain", [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]),
             _row(16, "stream", [7.0, 7.0, 7.0], [7.0, 7.0, 7.0]),  # 7.0 at the shorter length
             _row(16, "eager", [8.0, 8.0, 8.0], [8.0, 8.0, 8.0])],
    }
    table = format_table([r for n in order for r in by_len[n]], bc)
    lines = table.splitlines()
    assert lines[-1] == "trace_overhead_ratio=2.500"
    rows = {(int(m.group(1)), m.group(2)): m for m in map(ROW.match, lines) if m}
    assert rows[64, "stream"].group(4) == "2.500" and rows[64, "stream"].group(6) == "1.500"
    assert rows[16, "stream"].group(4) == "7.000"


def test_bench_trace_rejects_bad_sizes(capsys):
    assert main(["bench-trace", "--prompt-lengths", "0", "--device", "cpu"]) == 2
    assert "bench-trace" in capsys.readouterr().err
