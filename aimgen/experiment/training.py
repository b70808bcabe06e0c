"""One recipe for every arm: training with model selection on validation only, and the test
split evaluated once per run, at the chosen epoch."""
from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .arms import Arm, count_params
from .data import Splits

SCHEDULES = ("constant", "cosine")


@dataclass
class Recipe:
    """One training recipe for every arm: AdamW, a constant or cosine learning rate, up to
    ``epochs`` epochs, early stopping after ``patience`` epochs without a validation accuracy
    at least as good as the best (0: never)."""

    epochs: int = 30
    patience: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    workers: int = 0
    schedule: str = "constant"


@dataclass
class RunResult:
    """One arm, one seed: the validation curve, the chosen epoch and its test accuracy."""

    arm: str
    seed: int
    params: int
    val_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int = 0  # 1-based
    best_val: float = 0.0
    test_acc: float = float("nan")
    cpu_seconds: float = 0.0  # process CPU time of the whole run (training, validation, test)


def evaluate(model: nn.Module, data: Dataset, batch_size: int, workers: int) -> tuple[float, float]:
    """Accuracy and mean cross-entropy in eval() mode (the AiM carry is frozen there)."""
    model.eval()
    correct = total = 0
    loss = 0.0
    with torch.no_grad():
        for x, y in DataLoader(data, batch_size=max(batch_size, 256), num_workers=workers):
            logits = model(x)
            correct += (logits.argmax(1) == y).sum().item()
            loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
            total += len(y)
    return correct / max(total, 1), loss / max(total, 1)


def better(acc: float, best_acc: float) -> bool:
    """The selection rule: the highest validation accuracy, and among equal ones the later
    epoch. Small validation splits tie often (10 series allow 11 accuracies) and then cannot
    tell the epochs apart; the later one has trained longer (and, with the cosine schedule, at
    a lower learning rate), which is what the published recipes keep (their last or
    lowest-training-loss model after 1,500-2,000 epochs)."""
    return acc >= best_acc


def train_run(model: nn.Module, splits: Splits, arm: str, seed: int, recipe: Recipe,
              tick: Callable[[], None] = lambda: None) -> RunResult:
    """Train, select the epoch on validation (``better``), stop early after ``patience``
    epochs without one at least as good; evaluate the test split once, with the weights (and AiM
    carry) of the chosen epoch."""
    cpu_start = time.process_time()
    torch.manual_seed(seed)  # dropout draws
    order = torch.Generator().manual_seed(seed)  # the same batches, in the same order, for every arm
    loader = DataLoader(splits.train, batch_size=recipe.batch_size, shuffle=True, generator=order,
                        num_workers=recipe.workers)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = None
    if recipe.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs)
    result = RunResult(arm, seed, count_params(model))
    best_state = copy.deepcopy(model.state_dict())
    for epoch in range(1, recipe.epochs + 1):
        start = time.perf_counter()
        model.train()
        total, seen = 0.0, 0
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            seen += len(y)
        if sched is not None:
            sched.step()
        acc, val_loss = evaluate(model, splits.val, recipe.batch_size, recipe.workers)
        result.epoch_seconds.append(time.perf_counter() - start)
        result.val_acc.append(acc)
        result.val_loss.append(val_loss)
        result.train_loss.append(total / max(seen, 1))
        tick()
        if epoch == 1 or better(acc, result.best_val):
            result.best_val, result.best_epoch = acc, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif recipe.patience and epoch - result.best_epoch >= recipe.patience:
            break
    model.load_state_dict(best_state)
    result.test_acc = evaluate(model, splits.test, recipe.batch_size, recipe.workers)[0]
    result.cpu_seconds = time.process_time() - cpu_start
    return result


class Progress:
    """A rich progress bar on a terminal; one plain line per finished run otherwise (logs,
    CI), so a redirected run stays readable."""

    def __init__(self, total: int, enabled: bool = True, prefix: str = ""):
        self.total, self.enabled, self.prefix = total, enabled, prefix
        self.live = enabled and sys.stderr.isatty()
        self._bar = None

    def __enter__(self) -> "Progress":
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, \
                TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True, emoji=False))
            self._bar.__enter__()
            self._task = self._bar.add_task("training", total=self.total)
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=text)

    def advance(self, steps: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, steps)

    def done(self, r: RunResult) -> None:
        line = (f"{self.prefix}{r.arm:>5} seed {r.seed}: {len(r.val_acc)} epochs, best val {r.best_val:.2%} at "
                f"epoch {r.best_epoch}, test {r.test_acc:.2%} ({r.cpu_seconds:.0f} s CPU)")
        if self._bar is not None:
            self._bar.console.print(line)
        elif self.enabled:
            print(line, file=sys.stderr, flush=True)


def run_experiment(arms: list[Arm], splits: Splits, seeds: Sequence[int], recipe: Recipe,
                   quiet: bool = False, prefix: str = "") -> list[RunResult]:
    """Every arm for every seed, seed-major, so a stopped run still has comparable pairs."""
    results = []
    with Progress(len(arms) * len(seeds) * recipe.epochs, enabled=not quiet, prefix=prefix) as progress:
        for seed in seeds:
            for arm in arms:
                progress.describe(f"{prefix}{arm.name} seed {seed}")
                model = arm.build(seed)
                r = train_run(model, splits, arm.name, seed, recipe, progress.advance)
                progress.advance(recipe.epochs - len(r.val_acc))  # epochs saved by early stopping
                progress.done(r)
                results.append(r)
    return results
