"""Task data contracts: the unlabeled pool and its plans, labeled splits, verifiers, real-data loaders.

Nothing here reads the pool's gold answers; :mod:`pivottrace.labeled` does.
"""
