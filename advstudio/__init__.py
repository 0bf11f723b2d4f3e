"""advstudio: adversarial robustness analysis of audio classifiers."""

__version__ = "0.1.0"
