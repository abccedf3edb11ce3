"""The PivotTrace method, label-free: attention tracing, pivots, estimators, pool scoring,
dev tuning of the pivot definition, three-way triage and the selection registry.

No module here may import :mod:`pivottrace.labeled` (``tests/test_import_rules.py``).
"""
