"""``synthetic-text``: an offline sequence-classification task where the architecture matters.

Why this design. A label that is one hard rule, or an AND of easy and hard rules, makes children
either learn the hard part or sit near chance, largely by luck, so child rankings are noisy. We
also tried a 16-way label made of four independent feature bits: each bit alone was learned by a
suitable tiny bert child within ~600 steps, but learned jointly most children picked up only the
easiest one or two, again by luck. Here the binary label is the sign of a *sum* of three terms,
each favouring different operations, so every term a child learns, even partly, raises accuracy:
any one term predicts the label ~72% of the time, any two ~84%, all three 100%; and examples
with a small ``|score|`` are harder than ones with a large one.

The sequence is ``[CLS] t_1 ... t_{L-1}`` (``[PAD]``=0, ``[CLS]``=1, no padding; ``L`` = ``seq_len``).
Content tokens fall into disjoint groups (POS, NEG, FIRST, SECOND, HALF; the rest is filler):

==========  =========================================================  ==========================
term        value (computed on the final sequence)                     favours
==========  =========================================================  ==========================
count       #POS - #NEG tokens (1-4 of each)                           attention (global counting)
bigram      #(FIRST directly before SECOND) - #(SECOND before FIRST)    convolution (local order),
            among three pairs (in order, reversed, or split by a token)  then attention to pool it
position    #HALF in the first half - #HALF in the second (1-4 each)   attention with positions
==========  =========================================================  ==========================

``label = int(count + bigram + position > 0)``; sequences scoring 0 are drawn again. Every
sequence holds three FIRST/SECOND pairs, so token counts do not reveal the bigram term. The
classifier reads the ``[CLS]`` position, so a convolution-only child sees only the start of the
sequence: the mixing operations and their depth change what can be learned.

Data are generated with numpy from the task seed alone (default 0, independent of the training
seed): the same seed gives the same train/dev/test sets (defaults 20000/2000/2000 examples).
``task.terms[split]`` holds each example's three terms for analysis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._errors import NasUsageError
from . import register_task
from ._base import Task, TensorDictDataset

PAD, CLS = 0, 1
TERMS = ("count", "bigram", "position")


class _Vocab:
    """Token groups; everything not in a group is filler."""

    def __init__(self, vocab_size: int):
        ids = iter(range(2, vocab_size))
        take = lambda n: [next(ids) for _ in range(n)]  # noqa: E731
        self.pos, self.neg = take(4), take(4)
        self.first, self.second, self.half = take(3), take(3), take(4)
        self.filler = list(ids)
        self.sets = {name: frozenset(getattr(self, name)) for name in ("pos", "neg", "first", "second", "half")}


def score_terms(seq, v: _Vocab) -> list[int]:
    """The three terms of the score of one sequence (position 0 is ``[CLS]``): the ground truth."""
    body = [int(t) for t in seq[1:]]
    s = v.sets
    count = sum(t in s["pos"] for t in body) - sum(t in s["neg"] for t in body)
    pairs = list(zip(body, body[1:]))
    bigram = (sum(a in s["first"] and b in s["second"] for a, b in pairs)
              - sum(a in s["second"] and b in s["first"] for a, b in pairs))
    middle = len(body) // 2
    position = sum(t in s["half"] for t in body[:middle]) - sum(t in s["half"] for t in body[middle:])
    return [count, bigram, position]


class _Uniforms:
    """Random draws for one example from one numpy call (per-token numpy calls are too slow)."""

    def __init__(self, rng: np.random.Generator, n: int = 192):
        self.values, self.next = rng.random(n).tolist(), 0

    def below(self, k: int) -> int:
        value = self.values[self.next]
        self.next += 1
        return int(value * k)

    def pick(self, items: list[int]) -> int:
        return items[self.below(len(items))]

    def sample(self, items: range, k: int) -> list[int]:
        """``k`` distinct items (partial Fisher-Yates)."""
        pool = list(items)
        for i in range(k):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]


_PAIR_COUNTS = [(f, b) for f in range(4) for b in range(4 - f)]  # symmetric in forward/backward


def _example(u: _Uniforms, v: _Vocab, length: int) -> list[int]:
    n_pos, n_neg = 1 + u.below(4), 1 + u.below(4)
    segments = [[u.pick(v.pos)] for _ in range(n_pos)] + [[u.pick(v.neg)] for _ in range(n_neg)]
    n_forward, n_backward = u.pick(_PAIR_COUNTS)
    for i in range(3):  # three FIRST/SECOND pairs: in order, reversed, or with a token between
        a, b = u.pick(v.first), u.pick(v.second)
        kind = 0 if i < n_forward else 1 if i < n_forward + n_backward else 2
        segments.append([[a, b], [b, a], [a, u.pick(v.filler), b]][kind])
    n_early, n_late = 1 + u.below(4), 1 + u.below(4)
    body_len = length - 1
    used = sum(len(s) for s in segments) + n_early + n_late
    segments += [[u.pick(v.filler)] for _ in range(body_len - used)]
    for i in range(len(segments) - 1, 0, -1):  # Fisher-Yates shuffle
        j = u.below(i + 1)
        segments[i], segments[j] = segments[j], segments[i]
    rest = iter(tok for segment in segments for tok in segment)
    # HALF tokens take random places in the first / second half; the rest keeps its order
    middle = body_len // 2
    halves = set(u.sample(range(middle), n_early)) | set(u.sample(range(middle, body_len), n_late))
    body = [u.pick(v.half) if i in halves else next(rest) for i in range(body_len)]
    return [CLS] + body


def generate(seed, n: int, length: int = 48, vocab_size: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` sequences ``[n, length]``, their labels and score terms ``[n, 3]``; deterministic in ``seed``."""
    v = _Vocab(vocab_size)
    rng = np.random.default_rng(seed)
    inputs = np.empty((n, length), dtype=np.int64)
    terms = np.empty((n, len(TERMS)), dtype=np.int64)
    for i in range(n):
        while True:  # a zero score has no label: draw again
            seq = _example(_Uniforms(rng, 2 * length + 64), v, length)
            parts = score_terms(seq, v)
            if sum(parts):
                break
        inputs[i], terms[i] = seq, parts
    return inputs, (terms.sum(1) > 0).astype(np.int64), terms


@register_task("synthetic-text")
class SyntheticText(Task):
    """Offline sequence task whose label sums a counting, a local and a positional term (graded)."""

    modality = "text"
    problem = "classification"
    num_outputs = 2
    num_special_tokens = 2  # [PAD], [CLS]
    primary_metric = "accuracy"
    option_defaults = {"seq_len": 48, "vocab_size": 100, "train_size": 20000, "dev_size": 2000,
                       "test_size": 2000}
    _MIN_VOCAB = 2 + 4 + 4 + 3 + 3 + 4 + 8  # specials, token groups, at least 8 filler tokens

    def __init__(self, seed: int = 0, data_dir: Any = None, **options: Any):
        super().__init__(seed, data_dir, **options)
        o = self.options
        if o["vocab_size"] < self._MIN_VOCAB:
            raise NasUsageError(f"synthetic-text needs vocab_size >= {self._MIN_VOCAB}, got {o['vocab_size']}")
        if not 32 <= o["seq_len"] <= 512:
            raise NasUsageError(f"synthetic-text needs 32 <= seq_len <= 512, got {o['seq_len']}")
        bad = [k for k in ("train_size", "dev_size", "test_size") if o[k] < 1]
        if bad:
            raise NasUsageError(f"synthetic-text option(s) {', '.join(bad)} must be >= 1")
        self.terms: dict[str, torch.Tensor] = {}  # per split [n, 3]: for analysis, not for models
        self._data: dict[str, TensorDictDataset] = {}

    def _prepare(self, run_dir) -> None:
        o = self.options
        # One independent stream per split, so changing one split's size leaves the others alone.
        streams = np.random.SeedSequence([self.seed, 0x5E47]).spawn(len(self.splits))
        for split, stream in zip(self.splits, streams):
            inputs, labels, terms = generate(stream, o[f"{split}_size"], o["seq_len"], o["vocab_size"])
            ids = torch.from_numpy(inputs)
            self.terms[split] = torch.from_numpy(terms)
            self._data[split] = TensorDictDataset(
                input=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids),
                labels=torch.from_numpy(labels),
            )

    def _dataset(self, split: str) -> TensorDictDataset:
        return self._data[split]

    def space_overrides(self) -> dict[str, Any]:
        return {"vocab_size": self.options["vocab_size"], "num_classes": self.num_outputs,
                "max_positions": max(128, self.options["seq_len"])}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "score_terms": list(TERMS), "chance_accuracy": 0.5}
