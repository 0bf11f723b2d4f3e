"""Classifiers behind the AudioClassifier contract, and how to load them."""

from advstudio.core.models.base import AudioClassifier, pad_batch, predict_proba
from advstudio.core.models.cnn import InstrumentClassifier
from advstudio.core.models.loading import load_model

__all__ = ["AudioClassifier", "InstrumentClassifier", "load_model", "pad_batch", "predict_proba"]
