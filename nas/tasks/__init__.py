"""Tasks: data splits, head shape, loss and official metrics, looked up by name.

Built-ins: ``synthetic-text`` and ``digits`` (embedded, offline), ``glue:<task>`` (GLUE TSV files,
or the Hugging Face Hub) and ``imagenet`` (an ImageFolder tree or a Hugging Face image dataset) and ``cifar10`` (the official
binary or python CIFAR-10 files).
Outside packages add tasks with an entry point in the group ``nas.tasks``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._errors import NasUsageError
from .._registry import Registry
from ._base import Task, TensorDictDataset, model_kwargs

TASKS = Registry("task", "nas.tasks", "nas.tasks")
register_task = TASKS.register


def get_task(
    name: str,
    seed: int = 0,
    data_dir: str | Path | None = None,
    tokenizer: str | None = None,
    **options: Any,
) -> Task:
    """Build the task ``name`` (cheap: data are loaded by ``task.prepare(run_dir)``).

    ``seed`` fixes the task's data (generation, held-out splits), independently of training seeds;
    ``tokenizer`` (a Hugging Face name or path) applies to text tasks that read raw text.
    """
    factory = TASKS.get(name)
    if tokenizer:
        if not _takes_tokenizer(name):
            users = ", ".join(n for n in list_tasks() if _takes_tokenizer(n))
            raise NasUsageError(f"task '{name}' has its own vocabulary and takes no tokenizer; "
                                f"drop --tokenizer (it applies to: {users})")
        options["tokenizer"] = tokenizer
    return factory(seed=seed, data_dir=data_dir, **options)


def list_tasks() -> list[str]:
    return TASKS.names()


def _takes_tokenizer(name: str) -> bool:
    return "tokenizer" in getattr(TASKS.get(name), "option_defaults", {})


# Importing the modules registers the built-ins (``TASKS`` and ``register_task`` exist by now).
from . import _cifar10, _digits, _embedded_text, _glue, _imagenet  # noqa: E402,F401

__all__ = ["TASKS", "Task", "TensorDictDataset", "get_task", "list_tasks", "model_kwargs", "register_task"]
