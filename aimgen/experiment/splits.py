"""Splitting a data set: the three splits of an experiment, stratified and fixed by a seed
(used by every data source in ``data.py`` and ``ucr.py``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch.utils.data import Dataset


@dataclass
class Splits:
    """The three splits, plus what the model must accept and produce."""

    train: Dataset
    val: Dataset
    test: Dataset
    classes: list[str]
    input_shape: tuple[int, ...]  # one sample, e.g. (1, 8, 8) or (channels, length)
    description: str
    meta: dict = field(default_factory=dict)  # what results.json records about the data

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return self.input_shape[0]


def stratified_split(labels: Sequence[int], fractions: tuple[float, float], seed: int
                     ) -> tuple[list[int], list[int], list[int]]:
    """Indices for train / val / test, per class, so that every split has every class in
    proportion; ``fractions`` are the val and test shares. Fixed by ``seed`` (not the run seed):
    all arms and seeds share one split, so seeds measure training noise, not split luck."""
    gen = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(int(y), []).append(i)
    train, val, test = [], [], []
    for y in sorted(by_class):
        idx = [by_class[y][j] for j in torch.randperm(len(by_class[y]), generator=gen).tolist()]
        n_val = round(len(idx) * fractions[0])
        n_test = round(len(idx) * fractions[1])
        val += idx[:n_val]
        test += idx[n_val:n_val + n_test]
        train += idx[n_val + n_test:]
    return sorted(train), sorted(val), sorted(test)


def cap_per_class(labels: Sequence[int], limit: int | None) -> list[int]:
    """The first ``limit`` samples of every class (all of them without a limit): quick runs."""
    seen: dict[int, int] = {}
    keep = []
    for i, y in enumerate(labels):
        if limit is None or seen.get(int(y), 0) < limit:
            seen[int(y)] = seen.get(int(y), 0) + 1
            keep.append(i)
    return keep


def listing(names: Sequence[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


# ------------------------------------------------------------------------------------- digits
