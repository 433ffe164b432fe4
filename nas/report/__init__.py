"""The whole flow and what people read: ``nas run``'s pipeline (train -> search -> retrain ->
report.md), plots in one style and progress bars."""

from nas.report._pipeline import Pipeline, PipelineConfig, load_config_file, render_markdown
from nas.report._plots import figure, lines, save, scatter, style
from nas.report._progress import LazyProgress, make_progress, track

__all__ = [
    "LazyProgress",
    "Pipeline",
    "PipelineConfig",
    "figure",
    "lines",
    "load_config_file",
    "make_progress",
    "render_markdown",
    "save",
    "scatter",
    "style",
    "track",
]
