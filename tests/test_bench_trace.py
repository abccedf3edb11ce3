"""`pivottrace bench-trace` on tiny sizes: table layout, memory columns and the last line."""

from __future__ import annotations

import re

from pivottrace.cli import main

ROW = re.compile(
    r"^\s*(\d+) (plain|stream|eager)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+"
    r"(\S+)\s+(yes|no)$"
)


def test_bench_trace_verb(capsys, tmp_path):
    out = tmp_path / "bench.txt"
    rc = main(["bench-trace", "--prompt-lengths", "8,32", "--new-tokens", "4", "--batch-size", "2",
               "--repeats", "1", "--hidden-size", "32", "--num-layers", "2", "--num-heads", "2",
               "--threads", "1", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    m = re.fullmatch(r"trace_overhead_ratio=(\d+\.\d+)", lines[-1])
    assert m, lines[-1]
    assert float(m.group(1)) > 0
    header = [ln for ln in lines if ln.startswith("# ")]
    assert any("retained_MB" in ln and "peak_MB" in ln for ln in header)
    assert any("RSS" in ln for ln in header)  # CPU run: says which peak it measures
    rows = [ROW.match(ln) for ln in lines if ROW.match(ln)]
    assert [(int(r.group(1)), r.group(2)) for r in rows] == [
        (n, v) for n in (8, 32) for v in ("plain", "stream", "eager")]
    by = {(int(r.group(1)), r.group(2)): r for r in rows}
    for n in (8, 32):
        assert float(by[n, "plain"].group(4)) == 1.0  # ratio column is relative to plain
        assert float(by[n, "plain"].group(7)) == 0.0  # plain keeps no tracing state
        assert by[n, "stream"].group(9) == "yes"  # tracing does not change the rollouts
    # stream keeps O(T) state, eager O(T^2) maps: the gap widens with the prompt length
    stream = [float(by[n, "stream"].group(7)) for n in (8, 32)]
    eager = [float(by[n, "eager"].group(7)) for n in (8, 32)]
    assert eager[1] / eager[0] > stream[1] / stream[0]
    assert abs(float(by[32, "stream"].group(4)) - float(m.group(1))) <= 1e-3  # longest length
    assert out.read_text().strip().splitlines()[-1] == lines[-1]


def test_bench_trace_rejects_bad_sizes(capsys):
    assert main(["bench-trace", "--prompt-lengths", "0", "--device", "cpu"]) == 2
    assert "bench-trace" in capsys.readouterr().err
