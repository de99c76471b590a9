# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Reproducible shuffling: each epoch's order depends on (seed, epoch) and nothing else."""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """A new shuffle every epoch, drawn from (seed, epoch) alone.

    `engine.train` calls `set_epoch(epoch)` before each epoch, as DistributedSampler expects,
    so epoch 6 of a run resumed after epoch 5 sees the same order as epoch 6 of a run that never
    stopped, and a notebook run matches a command-line run with the same seed.
    """

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch whose order the next iteration gives (engine.train calls this)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())
