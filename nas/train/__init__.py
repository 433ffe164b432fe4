"""Super-net training (uniform, MAGIC-T, MAGIC-A, MAGIC-AT) and standalone retraining on DeepSpeed."""

from ._anchor import Anchor, align_weight, alignment_loss
from ._data import eval_batches, train_loader
from ._config import DEFAULT_DS_CONFIG, MODES, TrainConfig, load_ds_config, resolve_ds_config
from ._loop import Trainer, build_model, build_space, build_task, train
from ._samplers import FixedSampler, GradualSampler, UniformSampler, make_sampler
from ._weights import load_state, load_weights, save_weights

__all__ = [
    "Anchor", "DEFAULT_DS_CONFIG", "FixedSampler", "GradualSampler", "MODES", "TrainConfig",
    "Trainer", "UniformSampler", "align_weight", "alignment_loss", "build_model", "build_space",
    "build_task", "eval_batches", "load_ds_config", "load_state", "load_weights", "make_sampler",
    "resolve_ds_config", "save_weights", "train", "train_loader",
]
