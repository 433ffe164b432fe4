"""After the search: a child trained standalone (retrain) and exported as a standalone model."""

from nas.child._export import export_child
from nas.child._retrain import retrain

__all__ = ["export_child", "retrain"]
