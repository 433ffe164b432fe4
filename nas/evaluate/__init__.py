"""Scoring children: forward helpers, the super-net evaluator (inherited weights) and the table
evaluator (a tabular benchmark's trained results)."""

from nas.evaluate._base import Evaluator
from nas.evaluate._factory import evaluator_factory, reference_table
from nas.evaluate._forward import deterministic_mode, forward, mask_tokens, predict, scoring_mode, to_device
from nas.evaluate._supernet import DEFAULT_BN_RECAL_BATCHES, SupernetEvaluator, recalibrate_bn
from nas.evaluate._table import TableEvaluator

__all__ = [
    "DEFAULT_BN_RECAL_BATCHES",
    "Evaluator",
    "SupernetEvaluator",
    "TableEvaluator",
    "deterministic_mode",
    "evaluator_factory",
    "forward",
    "mask_tokens",
    "predict",
    "recalibrate_bn",
    "reference_table",
    "scoring_mode",
    "to_device",
]
