"""An endless stream of training batches whose position can be saved and restored exactly.

The position is (epoch, draws consumed in that epoch) of this process's `ModalityMixSampler`; since
every draw and every sample depend only on (seed, epoch, draw), restoring it with
`sampler.set_epoch(epoch, start=draws)` continues with the very batches an uninterrupted run would
have seen, with no replay. An epoch holds the number of records rounded up to whole batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch.utils.data import DataLoader, Dataset

from flexip.data.sampler import ModalityMixSampler


def epoch_draws(num_records: int, batch_size: int, num_replicas: int = 1) -> int:
    """Draws per epoch and process: the records split across processes, rounded up to whole batches."""
    return math.ceil(num_records / (batch_size * num_replicas)) * batch_size


class BatchStream:
    def __init__(
        self,
        dataset: Dataset,
        sampler: ModalityMixSampler,
        batch_size: int,
        collate_fn: Callable,
        num_workers: int = 0,
    ):
        self.dataset, self.sampler, self.batch_size = dataset, sampler, batch_size
        self.collate_fn, self.num_workers = collate_fn, num_workers
        self.epoch, self.position = 0, 0
        self._iterator = None

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            if self._iterator is None:
                self.sampler.set_epoch(self.epoch, start=min(self.position, self.sampler.num_samples))
                loader = DataLoader(
                    self.dataset,
                    batch_size=self.batch_size,
                    sampler=self.sampler,
                    collate_fn=self.collate_fn,
                    num_workers=self.num_workers,
                    drop_last=True,
                )
                self._iterator = iter(loader)
            try:
                batch = next(self._iterator)
            except StopIteration:
                self.epoch, self.position, self._iterator = self.epoch + 1, 0, None
                continue
            self.position += self.batch_size
            return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self._iterator = int(state["epoch"]), int(state["position"]), None
