"""How good is the super-net: ranking quality against ground truth, gradient interference, and
the statistics (rank correlations with bootstrap intervals, top-k regret) they report."""

from nas.analysis._ground_truth import GroundTruth, default_cache_dir
from nas.analysis._interference import interference
from nas.analysis._rank import rank, read_ground_truth, sample_children, table_ground_truth
from nas.analysis._stats import bootstrap_ci, mean_ci, ranking_report, top_k_overlap, top_k_regret

__all__ = [
    "GroundTruth",
    "bootstrap_ci",
    "default_cache_dir",
    "interference",
    "mean_ci",
    "rank",
    "ranking_report",
    "read_ground_truth",
    "sample_children",
    "table_ground_truth",
    "top_k_overlap",
    "top_k_regret",
]
