"""synthetic-text: deterministic generation, label = feature bits, distractors, model fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas import NasUsageError, get_space
from nas.tasks import get_task, model_kwargs
from nas.tasks._embedded_text import CLS, _Vocab, generate, score_terms

SMALL = {"train_size": 600, "dev_size": 200, "test_size": 200}


@pytest.fixture(scope="module")
def task():
    return get_task("synthetic-text", **SMALL).prepare()


def test_splits_sizes_and_shapes(task):
    assert [len(task.dataset(s)) for s in ("train", "dev", "test")] == [600, 200, 200]
    item = task.dataset("train")[0]
    assert item["input"].shape == (48,) and item["input"][0] == CLS
    assert int(item["input"].min()) >= 1 and int(item["input"].max()) < 100  # no padding, in vocab
    assert item["attention_mask"].all() and not item["token_type_ids"].any()
    assert int(item["labels"]) in (0, 1) and task.num_outputs == 2
    terms = task.terms["dev"]
    assert terms.shape == (200, 3) and torch.equal((terms.sum(1) > 0).long(), task.dataset("dev").tensors["labels"])


def test_same_seed_same_data_other_seed_other_data(task):
    again = get_task("synthetic-text", **SMALL).prepare()
    other = get_task("synthetic-text", seed=1, **SMALL).prepare()
    for split in ("train", "test"):
        assert torch.equal(task.dataset(split).tensors["input"], again.dataset(split).tensors["input"])
        assert not torch.equal(task.dataset(split).tensors["input"], other.dataset(split).tensors["input"])
    # splits are independent streams: a bigger train set leaves dev unchanged
    bigger = get_task("synthetic-text", **{**SMALL, "train_size": 700}).prepare()
    assert torch.equal(bigger.dataset("dev").tensors["input"], task.dataset("dev").tensors["input"])
    assert not torch.equal(task.dataset("dev").tensors["input"], task.dataset("test").tensors["input"])


def test_label_is_the_sign_of_the_summed_terms():
    inputs, labels, terms = generate(7, 2000)
    v = _Vocab(100)
    recomputed = np.array([score_terms(seq, v) for seq in inputs])
    assert (recomputed == terms).all() and (terms.sum(1) != 0).all()
    assert ((terms.sum(1) > 0) == labels).all()
    assert 0.45 < labels.mean() < 0.55  # balanced
    assert abs(np.corrcoef(terms.T)[np.triu_indices(3, 1)]).max() < 0.15  # independent terms
    for i in range(3):  # each term alone predicts the label well, but not perfectly
        alone = (terms[:, i] >= 0) == labels
        assert 0.65 < alone.mean() < 0.8


def test_distractors_hide_shortcuts():
    inputs, labels, terms = generate(3, 1000)
    v = _Vocab(100)
    body = inputs[:, 1:]
    pair_tokens = np.isin(body, v.first + v.second).sum(1)
    assert (pair_tokens == 6).all()  # the bigram term is not a count of its tokens
    assert set(terms[:, 1].tolist()) >= {-3, -2, -1, 0, 1, 2, 3}
    half = np.isin(body, v.half)
    assert (half.sum(1) >= 2).all() and (np.isin(body, v.pos).sum(1) >= 1).all()
    assert (terms[:, 2] == half[:, :23].sum(1) - half[:, 23:].sum(1)).all()


def test_options_are_validated():
    with pytest.raises(NasUsageError, match="needs vocab_size >= 28"):
        get_task("synthetic-text", vocab_size=20)
    with pytest.raises(NasUsageError, match="needs 32 <= seq_len <= 512"):
        get_task("synthetic-text", seq_len=8)
    short = get_task("synthetic-text", seq_len=32, vocab_size=64, train_size=50, dev_size=5, test_size=5)
    assert short.dataset("train")[0]["input"].shape == (32,)
    assert int(short.dataset("train").tensors["input"].max()) < 64
    assert short.space_overrides()["vocab_size"] == 64


def test_batches_fit_the_bert_space(task):
    overrides = task.space_overrides()
    assert overrides == {"vocab_size": 100, "num_classes": 2, "max_positions": 128}
    space = get_space("bert", preset="tiny", **overrides)
    torch.manual_seed(0)
    child = space.build_child("mha2,ffn128,conv3,id,mha4,ffn256,id,ffn128", num_outputs=task.num_outputs)
    loader = torch.utils.data.DataLoader(task.dataset("train"), batch_size=8, collate_fn=task.collate)
    batch = next(iter(loader))
    logits = child(batch["input"], **model_kwargs(batch))
    assert logits.shape == (8, 2)
    loss = task.loss(logits, batch["labels"])
    assert abs(loss.item() - np.log(2)) < 0.3  # about chance at initialisation
    assert task.describe()["chance_accuracy"] == 0.5
