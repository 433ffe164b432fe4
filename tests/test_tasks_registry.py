"""The task registry: names, lookup errors, option checking, plugins."""

from __future__ import annotations

import pytest
import torch

from nas import NasUsageError
from nas.tasks import TASKS, Task, get_task, list_tasks, model_kwargs, register_task

GLUE = ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"]


def test_builtins_are_listed():
    names = set(list_tasks())
    assert {"synthetic-text", "digits", "imagenet"} <= names
    assert {f"glue:{t}" for t in GLUE} <= names


def test_unknown_task_lists_valid_names():
    with pytest.raises(NasUsageError, match=r"unknown task 'glue:sst3'; choose from: .*glue:sst2.*synthetic-text"):
        get_task("glue:sst3")


def test_unknown_option_names_valid_ones():
    with pytest.raises(NasUsageError, match=r"unknown option\(s\) colour for task 'digits'; valid options: "
                                            r"augment \(default False\), image_size \(default 32\)"):
        get_task("digits", colour="red")


def test_string_options_are_converted_to_the_default_type():
    task = get_task("digits", image_size="16", augment="true")
    assert task.options == {"image_size": 16, "augment": True, "train_size": 0}
    with pytest.raises(NasUsageError, match="option image_size='big' must be an integer"):
        get_task("digits", image_size="big")
    with pytest.raises(NasUsageError, match="option augment='maybe' must be true or false"):
        get_task("digits", augment="maybe")


def test_embedded_tasks_refuse_data_dir_and_tokenizer(tmp_path):
    with pytest.raises(NasUsageError, match="takes no data directory; drop --data-dir"):
        get_task("synthetic-text", data_dir=tmp_path)
    with pytest.raises(NasUsageError, match=r"takes no tokenizer; drop --tokenizer \(it applies to: glue:cola"):
        get_task("digits", tokenizer="bert-base-uncased")


def test_unknown_split_is_a_usage_error():
    task = get_task("synthetic-text", train_size=8, dev_size=8, test_size=8)
    with pytest.raises(NasUsageError, match="has no split 'validation'; choose from: train, dev, test"):
        task.dataset("validation")


def test_model_kwargs_picks_optional_inputs():
    batch = {"input": 1, "labels": 2, "attention_mask": 3, "token_type_ids": 4}
    assert model_kwargs(batch) == {"attention_mask": 3, "token_type_ids": 4}
    assert model_kwargs({"input": 1, "labels": 2}) == {}


def test_register_task_decorator_and_lifecycle():
    @register_task("test-constant")
    class Constant(Task):
        option_defaults = {"n": 4}

        def _prepare(self, run_dir):
            self.prepared_calls = getattr(self, "prepared_calls", 0) + 1

        def _dataset(self, split):
            return [{"input": torch.zeros(2), "labels": torch.tensor(0)}] * self.options["n"]

    try:
        task = get_task("test-constant", seed=3, n="2")
        assert isinstance(task, Constant) and task.seed == 3
        assert len(task.dataset("train")) == 2  # prepares on first use
        task.prepare()
        assert task.prepared_calls == 1  # idempotent
        assert task.describe()["task"] == "test-constant"
        logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
        assert task.metrics(logits, torch.tensor([0, 0])) == {"accuracy": 0.5}
    finally:
        TASKS._entries.pop("test-constant", None)


def test_entry_point_plugin_task(plugin_path):
    (plugin_path / "nas_test_plugin_task.py").write_text(
        "from nas.tasks import Task\n\nclass PluginTask(Task):\n    'From outside.'\n"
    )
    dist = plugin_path / "nas_test_plugin_task-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nas-test-plugin-task\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nas.tasks]\nplugin-task = nas_test_plugin_task:PluginTask\n")
    try:
        TASKS.discover(force=True)
        assert "plugin-task" in list_tasks()
        assert type(get_task("plugin-task")).__name__ == "PluginTask"
    finally:
        TASKS._entries.pop("plugin-task", None)
