"""The recipe: the epoch chosen on validation only (ties broken by validation loss), early
stopping, the test split evaluated exactly once per run, identical runs for identical seeds."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from aimgen.experiment.data import Splits
from aimgen.experiment.training import Recipe, better, train_run


class Counting(Dataset):
    """A dataset that counts how often its samples are read."""

    def __init__(self, inner):
        self.inner, self.reads = inner, 0

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        self.reads += 1
        return self.inner[i]


def _splits(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return Splits(TensorDataset(x, y), TensorDataset(x[:10], y[:10]), Counting(TensorDataset(x[10:], y[10:])),
                  ["0", "1"], (4,), "toy")


def test_selection_rule_prefers_the_later_of_equal_epochs():
    assert better(0.9, 0.8)
    assert better(0.9, 0.9)        # a tie: the later epoch (trained longer) is kept
    assert not better(0.8, 0.9)


def test_test_split_is_read_once_and_the_best_epoch_is_kept():
    splits = _splits()
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    r = train_run(model, splits, "base", 0, Recipe(epochs=6, patience=0, batch_size=8, lr=0.05))
    assert splits.test.reads == len(splits.test)  # one evaluation pass, at the chosen epoch
    assert len(r.val_acc) == 6 == len(r.val_loss) == len(r.train_loss)
    best = max(range(6), key=lambda e: (r.val_acc[e], e))
    assert r.best_epoch == best + 1 and r.best_val == r.val_acc[best]
    assert 0 <= r.test_acc <= 1 and r.cpu_seconds > 0


def test_early_stopping_counts_from_the_best_epoch(monkeypatch):
    from aimgen.experiment import training

    scripted = iter([0.5, 0.7, 0.6, 0.7, 0.6, 0.6, 0.9, 0.9])  # validation accuracy per epoch

    def fake_evaluate(model, data, batch_size, workers):
        return (next(scripted), 0.0) if data is not splits.test else (0.42, 0.0)

    splits = _splits()
    monkeypatch.setattr(training, "evaluate", fake_evaluate)
    r = train_run(nn.Linear(4, 2), splits, "base", 0, Recipe(epochs=8, patience=2, batch_size=8, lr=0.01,
                                                             schedule="cosine"))
    # epoch 4 ties epoch 2 (the later is kept); epochs 5 and 6 are worse: stop there, never see 0.9
    assert r.val_acc == [0.5, 0.7, 0.6, 0.7, 0.6, 0.6] and r.best_epoch == 4 and r.test_acc == 0.42


def test_same_seed_same_run():
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(train_run(nn.Linear(4, 2), _splits(), "base", 3, Recipe(epochs=3, patience=0, batch_size=8)))
    assert runs[0].val_acc == runs[1].val_acc and runs[0].test_acc == runs[1].test_acc
