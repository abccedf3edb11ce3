"""The embedded testbed (DESIGN.md section 4): the modchain task, its noisy teacher, the
from-scratch reasoner and the base-model build. Replaceable by any local model and dataset.
"""
