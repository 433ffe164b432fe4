"""Zero-cost estimators: score a child from its architecture and a few batches, with no super-net.

A :class:`ZeroCostEstimator` (registered with ``@register_estimator("name")``; built-ins in
:mod:`nas.estimators`) turns a freshly initialised child and one batch of the task into a number
that is meant to rank children like their trained accuracy does (the zero-cost proxies of
Abdelfattah et al., ICLR 2021, and Mellor et al., ICML 2021). :class:`ZeroCostEvaluator` is the
:class:`~nas.evaluate.Evaluator` around one: it builds the space fitted to the task, draws the
batch once by seed, initialises every child from the same seed, and so gives the same score for
the same ``(arch, seed)`` in any order, in any process -- what ``nas rank --estimator`` and
``nas search --estimator`` use.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from nas._errors import NasUsageError
from nas.evaluate._base import Evaluator
from nas.supernet._space import Arch, SearchSpace

# What a score is called in an ensemble: the super-net's own estimate.
SUPERNET = "supernet"


class ZeroCostEstimator:
    """Scores a child without training it. Subclasses set the class attributes and ``score``.

    ``score(child, batch, space, arch)`` gets the child freshly initialised from the seed (in
    float32, train mode; put it in the mode the proxy needs) and one batch of the task's training
    data (``None`` when ``needs_data`` is false); it returns a finite float, higher is better.
    ``check(space)`` refuses, with one line naming the space, a space the proxy cannot apply to.
    """

    name: ClassVar[str] = ""
    needs_data: ClassVar[bool] = True  # one batch of the task's training data
    needs_model: ClassVar[bool] = True  # False: scored from the space's cost counter alone
    greater_is_better: ClassVar[bool] = True

    def check(self, space: SearchSpace) -> None:
        """Raise :class:`NasUsageError` naming the space if the proxy cannot apply to it."""

    def score(self, child: nn.Module | None, batch: dict[str, Any] | None, space: SearchSpace,
              arch: Arch) -> float:
        raise NotImplementedError


def parse_estimators(spec: str) -> list[str]:
    """``"supernet+params"`` -> ``["supernet", "params"]``: each name known and named once."""
    from nas._registry import ESTIMATORS

    names = [n.strip() for n in str(spec).split("+")]
    if not spec or any(not n for n in names):
        raise NasUsageError(f"--estimator '{spec}' names an empty estimator; write NAME or A+B "
                            f"(choose from: {', '.join([SUPERNET, *ESTIMATORS.names()])})")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise NasUsageError(f"--estimator '{spec}' names {', '.join(twice)} twice; name each "
                            "estimator of an ensemble once")
    for n in names:
        if n != SUPERNET and n not in ESTIMATORS:
            raise NasUsageError(f"unknown estimator '{n}'; choose from: "
                                f"{', '.join([SUPERNET, *ESTIMATORS.names()])}")
    return names


class ZeroCostEvaluator(Evaluator):
    """Scores children of ``space`` (fitted to ``task``) with the zero-cost estimator ``name``.

    The batch is ``batch_size`` training examples drawn by ``seed``; every child is initialised
    from ``seed`` (``torch.manual_seed`` before it is built), so a score depends only on
    ``(arch, seed)``. The score is returned under the estimator's name, with its cost in
    seconds (``seconds``)."""

    run_dir = None

    def __init__(self, name: str, space: str | SearchSpace = "nb201", preset: str = "tiny",
                 task: str | None = None, data_dir: str | None = None, seed: int = 0,
                 batch_size: int = 64, task_seed: int = 0, tokenizer: str | None = None,
                 image_size: int | None = None, device: str | None = None, task_obj: Any = None):
        from nas._registry import ESTIMATORS, SPACES

        if name == SUPERNET or "+" in str(name):
            raise NasUsageError(f"'{name}' is not a zero-cost estimator; choose from: "
                                f"{', '.join(ESTIMATORS.names())}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
            raise NasUsageError(f"the estimator batch size must be an integer >= 2, got {batch_size}")
        self.estimator: ZeroCostEstimator = ESTIMATORS.get(name)()
        self.name = name
        space_name = space.name if isinstance(space, SearchSpace) else space
        space_cls = SPACES.get(space_name)
        self.task = task_obj
        task_name = task or getattr(task_obj, "name", None) or space_cls.default_task
        needs_task = self.estimator.needs_data or task is not None or task_obj is not None
        if self.task is None and needs_task:
            if task_name is None:
                raise NasUsageError(f"estimator '{name}' scores children on a batch of data, and space "
                                    f"'{space_name}' has no default task; give --task")
            from nas.train import TrainConfig, build_task

            cfg = TrainConfig(space=space_name, out="", preset=preset, task=task_name, data_dir=data_dir,
                              task_seed=task_seed, tokenizer=tokenizer, image_size=image_size)
            self.task = build_task(cfg, None)
        if isinstance(space, SearchSpace):
            self.space = space
        elif self.task is not None:
            from nas.train import TrainConfig, build_space

            self.space = build_space(TrainConfig(space=space_name, out="", preset=preset), self.task)
        else:
            self.space = space_cls(preset=preset)
        if self.estimator.needs_data and self.task.problem != "classification":
            raise NasUsageError(f"estimator '{name}' needs a classification task; '{self.task.name}' "
                                f"is {self.task.problem}")
        self.estimator.check(self.space)
        self.seed = int(seed)
        self.batch_size = batch_size
        self.device = device or "cpu"
        self.primary_metric = name
        self.greater_is_better = self.estimator.greater_is_better
        self.metric_names = (name, "seconds")
        self._batch: dict[str, Any] | None = None
        self._cache: dict[str, dict[str, float]] = {}

    def describe(self) -> dict[str, Any]:
        return {"estimator": self.name, "space": self.space.name, "preset": self.space.preset,
                "task": getattr(self.task, "name", None), "seed": self.seed, "batch_size": self.batch_size}

    def batch(self) -> dict[str, Any] | None:
        """``batch_size`` training examples drawn once by ``seed`` (None if the proxy needs none)."""
        if not self.estimator.needs_data:
            return None
        if self._batch is None:
            data = self.task.dataset("train")
            if len(data) < 2:
                raise NasUsageError(f"task '{self.task.name}' has {len(data)} training example(s); "
                                    f"estimator '{self.name}' needs a batch of at least 2")
            idx = random.Random(self.seed).sample(range(len(data)), min(self.batch_size, len(data)))
            from nas.evaluate._forward import to_device

            with torch.random.fork_rng(devices=[]):  # augmentation draws from the global RNG
                torch.manual_seed(self.seed)
                self._batch = to_device(self.task.collate([data[i] for i in idx]), self.device)
        return self._batch

    def build_child(self, arch: Arch) -> nn.Module:
        """The child initialised from the seed (same weights whichever children came before)."""
        head = "classification"
        num_outputs = self.task.num_outputs if self.task is not None else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            child = self.space.build_child(arch, num_outputs=num_outputs, head=head)
        return child.to(self.device)

    def evaluate(self, arch: Sequence[str]) -> dict[str, float]:
        arch = self.space.parse(arch)
        key = self.space.encode(arch)
        if key not in self._cache:
            start = time.perf_counter()
            child = self.build_child(arch) if self.estimator.needs_model else None
            value = float(self.estimator.score(child, self.batch(), self.space, arch))
            if not math.isfinite(value):
                raise RuntimeError(f"estimator '{self.name}' gave {value} for {key}")
            self._cache[key] = {self.name: value, "seconds": time.perf_counter() - start}
        return dict(self._cache[key])
