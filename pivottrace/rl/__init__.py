"""Training and evaluation: GRPO through TRL (rewards, callbacks, checkpoints), the train rule,
and lm-eval evaluation with its local task template.
"""
