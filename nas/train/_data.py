"""Deterministic, resumable batches: step ``s``'s global batch is a pure function of (seed, s).

Every rank draws the same global batch and takes its own slice, so N ranks with micro-batch B see
exactly the samples one process with micro-batch N*B sees; resume needs no data-loader state.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class StepBatchSampler(Sampler[list[int]]):
    """Yields this rank's index lists for steps ``start..stop-1`` (each step = ``accum`` micro-batches)."""

    def __init__(self, n: int, global_batch: int, accum: int, seed: int, rank: int, world: int,
                 start: int, stop: int):
        if global_batch > n:
            global_batch = n
        self.n, self.global_batch, self.accum = n, global_batch, accum
        self.seed, self.rank, self.world = seed, rank, world
        self.start, self.stop = start, stop

    def _epoch_perm(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def global_indices(self, step: int) -> list[int]:
        per_epoch = self.n // self.global_batch  # drop the ragged tail of each epoch
        epoch, offset = divmod(step, per_epoch)
        perm = self._epoch_perm(epoch)
        return perm[offset * self.global_batch:(offset + 1) * self.global_batch].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            idx = self.global_indices(step)
            micro = len(idx) // self.accum
            for m in range(self.accum):
                chunk = idx[m * micro:(m + 1) * micro]
                yield chunk[self.rank::self.world]

    def __len__(self) -> int:
        return (self.stop - self.start) * self.accum


def train_loader(dataset: Dataset, collate, global_batch: int, accum: int, seed: int, rank: int,
                 world: int, start: int, stop: int, num_workers: int = 0) -> DataLoader:
    sampler = StepBatchSampler(len(dataset), global_batch, accum, seed, rank, world, start, stop)
    # Its own generator: the loader must not draw from the global RNG, which dropout uses and a
    # checkpoint restores (resume would otherwise shift every later dropout mask).
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(seed + start))


def eval_batches(dataset: Dataset, collate, batch_size: int, limit: int | None = None,
                 rank: int = 0, world: int = 1, num_workers: int = 0) -> list[dict]:
    """The first ``limit`` batches of a split in order (this rank's share), materialised once.

    Ranks take whole batches in turn (batch-statistics BatchNorm then sees the batches one process
    would); with fewer batches than ranks, every rank takes its share of each batch instead, so no
    rank is left without data."""
    n = len(dataset)
    starts = list(range(0, n, batch_size))
    if limit is not None:
        starts = starts[:limit]
    if len(starts) >= world:
        spans = [range(s, min(s + batch_size, n)) for s in starts[rank::world]]
    else:
        spans = [range(s, min(s + batch_size, n))[rank::world] for s in starts]
    return [collate([dataset[i] for i in span]) for span in spans if len(span)]
