"""READS LABELS. Every reader of the pool's gold answers: the annotation oracle (the only door for
training), the oracle upper-bound scores, the base report and pseudo-label accuracy (analysis).

The import rule of ``tests/test_import_rules.py`` keeps the method and the baselines away from here.
"""
