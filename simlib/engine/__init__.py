"""Prediction engine: multi-unit roofline with IO counting for any Einsum cascade."""
from simlib.engine.prediction import EinsumCost, Prediction
from simlib.engine.roofline import predict_cascade

__all__ = ["EinsumCost", "Prediction", "predict_cascade"]
