"""lm-eval task template and ``process_results`` hooks used by :mod:`pivottrace.rl.evaluate`.

``task_template.yaml`` is rendered per evaluation (the data path is dynamic) into a
temporary folder together with a copy of ``utils.py``; never point lm-eval's
``include_path`` at this package folder itself.
"""
