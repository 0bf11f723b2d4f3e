"""Defenses judged by adaptive attacks (issue 15): input transforms as model wrappers
(wrapper.py), defensive distillation's soft labels (distillation.py) and the evaluation that
sets the plain attack against the adaptive one (evaluation.py)."""
