"""Scoring children: forward helpers, the super-net evaluator (inherited weights), the table
evaluator (a tabular benchmark's trained results) and zero-cost estimators (no training)."""

from nas.evaluate._base import Evaluator
from nas.evaluate._factory import evaluator_factory, reference_table
from nas.evaluate._forward import deterministic_mode, forward, mask_tokens, predict, scoring_mode, to_device
from nas.evaluate._supernet import DEFAULT_BN_RECAL_BATCHES, SupernetEvaluator, recalibrate_bn
from nas.evaluate._table import TableEvaluator
from nas.evaluate._zero_cost import SUPERNET, ZeroCostEstimator, ZeroCostEvaluator, parse_estimators

__all__ = [
    "DEFAULT_BN_RECAL_BATCHES",
    "SUPERNET",
    "Evaluator",
    "SupernetEvaluator",
    "TableEvaluator",
    "ZeroCostEstimator",
    "ZeroCostEvaluator",
    "deterministic_mode",
    "evaluator_factory",
    "forward",
    "mask_tokens",
    "parse_estimators",
    "predict",
    "recalibrate_bn",
    "reference_table",
    "scoring_mode",
    "to_device",
]
