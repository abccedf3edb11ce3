"""Benchmarks that print side-by-side ratios (``pivottrace bench-trace``)."""
