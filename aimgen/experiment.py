"""aimgen experiment: does memory help *this* model on *this* data?

The source article's result (ResNet50 on Stanford Dogs, 15.14% -> 20.06%) came from one run per
arm, with model selection on the test split and a different stem in the memory arm. This
command avoids each of those faults:

* three arms trained with one recipe: ``base``, ``aim`` (``aimgen.convert`` of the base) and
  ``wider``, the base with as many extra parameters as the AiM model has, so "more
  parameters" and "memory" can be told apart;
* several seeds per arm; within a seed every arm sees the same split, the same batches in the
  same order and starts from the same weights wherever the arms share a layer;
* a train / validation / test split; early stopping and the best epoch are chosen on
  validation only, and the test split is evaluated once per run, at that epoch.

The "wider" arm: aimgen cannot re-parameterise an arbitrary model (it may come from a
zero-argument builder), so the base is widened generically: its output layer (the last
``Linear`` or ``ConvNd`` whose output is the model's output) gets a parallel two-layer branch
``in -> h -> classes`` (ReLU between, same kernel geometry as the layer for convolutions),
added to the layer's output. ``h`` is chosen so the total parameter count matches the AiM
model's as closely as one hidden unit allows. It is "the same network plus an extra hidden
path of matched size", which is capacity without memory.

Output in ``--out``: ``val_accuracy.png`` (validation accuracy per epoch per arm, mean and
min-max band over seeds), ``results.md`` (test accuracy mean +- std per arm, parameters, time
per epoch, paired differences to the base) and ``results.json`` (every number).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from .errors import AimgenError

ARMS = ("base", "aim", "wider")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
OUTPUT_FILES = ("val_accuracy.png", "results.md", "results.json")


class DataError(AimgenError):
    """The data set cannot be used (missing classes, empty classes, unreadable images...)."""


class ExperimentError(AimgenError):
    """The model, the options or the outputs do not fit an experiment."""


# --------------------------------------------------------------------------------------- data


@dataclass
class Splits:
    """The three splits, plus what the model must accept and produce."""

    train: Dataset
    val: Dataset
    test: Dataset
    classes: list[str]
    input_shape: tuple[int, ...]  # one sample, e.g. (1, 8, 8)
    description: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)


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


def _cap_per_class(labels: Sequence[int], limit: int | None) -> list[int]:
    """The first ``limit`` samples of every class (all of them without a limit): quick runs."""
    seen: dict[int, int] = {}
    keep = []
    for i, y in enumerate(labels):
        if limit is None or seen.get(int(y), 0) < limit:
            seen[int(y)] = seen.get(int(y), 0) + 1
            keep.append(i)
    return keep


def load_digits(input_size: tuple[int, int] | None, limit: int | None) -> tuple[Dataset, list[int], list[str], str]:
    """scikit-learn's digits (1,797 8x8 grayscale images, 10 classes), scaled to [0, 1]."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise DataError("--data digits needs scikit-learn, which is not installed.",
                        hint="Install it (pip install scikit-learn), or give an image folder.") from None
    bunch = sk_digits()
    keep = _cap_per_class(bunch.target.tolist(), limit)
    x = torch.tensor(bunch.images[keep], dtype=torch.float32).unsqueeze(1) / 16.0
    if input_size is not None and tuple(input_size) != tuple(x.shape[-2:]):
        x = nn.functional.interpolate(x, size=input_size, mode="bilinear", align_corners=False)
    y = torch.tensor(bunch.target[keep], dtype=torch.long)
    return TensorDataset(x, y), y.tolist(), [str(c) for c in range(10)], "scikit-learn digits"


def scan_image_folder(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """Classes (sub-folders) and image files of an ImageFolder-style directory, refusing
    what would otherwise fail mid-training: no classes, an empty class, unreadable images."""
    if not root.exists():
        raise DataError(f"--data {root}: no such directory.",
                        hint="Give a folder with one sub-folder of images per class, or --data digits.")
    if not root.is_dir():
        raise DataError(f"--data {root}: not a directory.",
                        hint="Give a folder with one sub-folder of images per class, or --data digits.")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"--data {root}: no class folders found; the directory must hold one sub-folder "
                        "per class, each with that class's images (ImageFolder layout: DIR/CLASS/IMAGE.jpg).",
                        hint="Move the images into class sub-folders.")
    samples: list[tuple[Path, int]] = []
    empty = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            empty.append(name)
        samples += [(p, label) for p in files]
    if empty:
        raise DataError(f"--data {root}: {len(empty)} class folder(s) hold no images: {_listing(empty)} "
                        f"(images are files ending in {', '.join(IMAGE_EXTENSIONS)}).",
                        hint="Add images to these folders or remove them; every class needs examples.")
    _check_readable(root, [p for p, _ in samples])
    return classes, samples


def _listing(names: Sequence[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _check_readable(root: Path, paths: Sequence[Path]) -> None:
    """Open every image once before training, so a bad file fails now and by name, not after
    an hour of training. Decoding fully (``load``) also catches truncated files."""
    from PIL import Image

    bad = []
    for path in paths:
        try:
            with Image.open(path) as im:
                im.load()
        except Exception as err:  # PIL raises many types for bad files
            bad.append(f"{path.relative_to(root)} ({type(err).__name__})")
    if bad:
        raise DataError(f"--data {root}: {len(bad)} image file(s) cannot be read: {_listing(bad)}.",
                        hint="Delete or replace them (or move them out of the class folders) and run again.")


class ImageFiles(Dataset):
    """Images read from disk on demand, converted to the model's channels and resized to one
    size (datasets such as Stanford Dogs mix sizes), scaled to [0, 1]."""

    def __init__(self, samples: list[tuple[Path, int]], channels: int, size: tuple[int, int]):
        self.samples = samples
        self.mode = "L" if channels == 1 else "RGB"
        self.size = size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        path, label = self.samples[i]
        with Image.open(path) as im:
            im = im.convert(self.mode).resize((self.size[1], self.size[0]), Image.BILINEAR)
            return pil_to_tensor(im).float() / 255.0, label


def load_splits(data: str, *, channels: int, input_size: tuple[int, int] | None, limit: int | None,
                fractions: tuple[float, float], split_seed: int) -> Splits:
    """``digits`` or an ImageFolder directory, split into train / val / test."""
    if data == "digits":
        dataset, labels, classes, description = load_digits(input_size, limit)
    else:
        if input_size is None:
            raise DataError(f"--data {data}: give --input-size H,W for an image folder (images are resized "
                            "to it, since folders such as Stanford Dogs mix sizes).",
                            hint="For example --input-size 224,224.")
        classes, samples = scan_image_folder(Path(data))
        keep = _cap_per_class([y for _, y in samples], limit)
        samples = [samples[i] for i in keep]
        dataset, labels = ImageFiles(samples, channels, input_size), [y for _, y in samples]
        description = f"{data} ({len(classes)} classes)"
    train, val, test = stratified_split(labels, fractions, split_seed)
    if not train or not val or not test:
        raise DataError(f"--data {data}: {len(labels)} images are too few for a train / validation / test "
                        f"split ({len(train)} / {len(val)} / {len(test)}).",
                        hint="Add images, raise --limit, or change --val-fraction / --test-fraction.")
    shape = tuple(dataset[0][0].shape)
    return Splits(Subset(dataset, train), Subset(dataset, val), Subset(dataset, test), classes, shape,
                  f"{description}: {len(train)} train / {len(val)} val / {len(test)} test")


# ------------------------------------------------------------------------------------- models


def infer_channels(model: nn.Module) -> int | None:
    """The input channels of the first convolution, or None (then the data decides)."""
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return m.in_channels
    return None


def check_output(model: nn.Module, input_shape: tuple[int, ...], num_classes: int, label: str) -> None:
    """Run the model once on two samples: it must return ``(2, num_classes)`` logits."""
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape))
    except Exception as err:
        raise ExperimentError(f"{label}: running the model on the data's input shape {(2, *input_shape)} "
                              f"failed: {type(err).__name__}: {err}.",
                              hint="Check --input-size and the model's expected input channels.") from err
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ExperimentError(f"{label}: the model returns {shape} for a batch of 2; an experiment needs "
                              "one row of class logits per sample, shape (batch, classes).",
                              hint="Point aimgen at a classifier, or wrap the model so it returns logits.")
    if out.shape[1] != num_classes:
        raise ExperimentError(f"{label}: the model outputs {out.shape[1]} values per sample but the data has "
                              f"{num_classes} classes.",
                              hint=f"Build the model with {num_classes} outputs (e.g. num_classes={num_classes} "
                              "in a zero-argument build_model function) and run again.")


def reinitialised(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model`` with every layer's parameters drawn afresh from ``seed`` (layers
    re-run their own ``reset_parameters``, so each keeps its usual PyTorch init)."""
    torch.manual_seed(seed)
    fresh = copy.deepcopy(model)
    for m in fresh.modules():
        if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
            m.reset_parameters()
    return fresh


def share_init(src: nn.Module, dst: nn.Module) -> int:
    """Copy ``src``'s weights into the layers ``dst`` shares with it (same state_dict key), so
    arms differ only in what they add. A tapped layer's weight is wider on dim 1 (the memory
    channels come last); its leading slice takes the base weight and the memory slice keeps
    its own init. Returns how many tensors were copied."""
    copied = 0
    dst_state = dst.state_dict()
    with torch.no_grad():
        for key, value in src.state_dict().items():
            target = dst_state.get(key)
            if target is None or target.dim() != value.dim():
                continue
            if target.shape == value.shape:
                target.copy_(value)
            elif value.dim() >= 2 and target.shape[0] == value.shape[0] and target.shape[2:] == value.shape[2:] \
                    and target.shape[1] > value.shape[1]:
                target[:, :value.shape[1]].copy_(value)
            else:
                continue
            copied += 1
    return copied


class ParallelBranch(nn.Module):
    """``layer(x) + up(relu(down(x)))``: the output layer plus an extra hidden path of
    ``hidden`` units. The wider arm's extra parameters."""

    def __init__(self, layer: nn.Module, hidden: int):
        super().__init__()
        self.layer = layer
        if isinstance(layer, nn.Linear):
            self.down = nn.Linear(layer.in_features, hidden)
            self.up = nn.Linear(hidden, layer.out_features, bias=False)
        else:
            conv = type(layer)
            self.down = conv(layer.in_channels, hidden, layer.kernel_size, stride=layer.stride,
                             padding=layer.padding, dilation=layer.dilation)
            self.up = conv(hidden, layer.out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x) + self.up(torch.relu(self.down(x)))


def _per_hidden_unit(layer: nn.Module) -> int:
    if isinstance(layer, nn.Linear):
        return layer.in_features + 1 + layer.out_features
    return layer.in_channels * math.prod(layer.kernel_size) + 1 + layer.out_channels


def output_layer(model: nn.Module, input_shape: tuple[int, ...]) -> str:
    """The qualified name of the last Linear / Conv1-3d called whose output has the model's
    output shape (found by running the model once with hooks)."""
    calls: list[tuple[str, tuple[int, ...]]] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: calls.append((name, tuple(out.shape))))
             for name, m in model.named_modules()
             if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) and (
                 isinstance(m, nn.Linear) or m.groups == 1)]
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    for name, shape in reversed(calls):
        if shape == tuple(out.shape) and name:
            return name
    raise ExperimentError("the wider arm needs the model's output to come from a Linear or Conv layer "
                          "(it adds a parallel branch of matched size there), and none was found.",
                          hint="Run with --arms base,aim to compare without the wider control.")


def widened(base: nn.Module, extra: int, input_shape: tuple[int, ...], seed: int) -> tuple[nn.Module, int]:
    """``base`` plus a parallel hidden branch on its output layer with about ``extra``
    parameters (see the module docstring). Returns the model and the branch's width."""
    name = output_layer(base, input_shape)
    model = copy.deepcopy(base)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    layer = getattr(parent, attr)
    hidden = max(1, round(extra / _per_hidden_unit(layer)))
    torch.manual_seed(seed + 7919)  # the branch's own draw; the shared layers are the base's
    setattr(parent, attr, ParallelBranch(layer, hidden))
    return model, hidden


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------- training


@dataclass
class Recipe:
    """One training recipe for every arm."""

    epochs: int = 30
    patience: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    workers: int = 0


@dataclass
class RunResult:
    """One arm, one seed: the validation curve, the chosen epoch and its test accuracy."""

    arm: str
    seed: int
    params: int
    val_acc: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int = 0  # 1-based
    best_val: float = 0.0
    test_acc: float = float("nan")


def evaluate(model: nn.Module, data: Dataset, batch_size: int, workers: int) -> float:
    """Accuracy in eval() mode (the AiM carry is frozen there)."""
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in DataLoader(data, batch_size=max(batch_size, 256), num_workers=workers):
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return correct / max(total, 1)


def train_run(model: nn.Module, splits: Splits, arm: str, seed: int, recipe: Recipe,
              tick: Callable[[], None]) -> RunResult:
    """Train with early stopping on validation accuracy; evaluate the test split once, with
    the weights (and AiM carry) of the best validation epoch."""
    torch.manual_seed(seed)  # dropout draws
    order = torch.Generator().manual_seed(seed)  # the same batches, in the same order, for every arm
    loader = DataLoader(splits.train, batch_size=recipe.batch_size, shuffle=True, generator=order,
                        num_workers=recipe.workers)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    result = RunResult(arm, seed, count_params(model))
    best_state = copy.deepcopy(model.state_dict())
    for epoch in range(1, recipe.epochs + 1):
        start = time.perf_counter()
        model.train()
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        acc = evaluate(model, splits.val, recipe.batch_size, recipe.workers)
        result.epoch_seconds.append(time.perf_counter() - start)
        result.val_acc.append(acc)
        tick()
        if acc > result.best_val or epoch == 1:
            result.best_val, result.best_epoch = acc, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif recipe.patience and epoch - result.best_epoch >= recipe.patience:
            break
    model.load_state_dict(best_state)
    result.test_acc = evaluate(model, splits.test, recipe.batch_size, recipe.workers)
    return result


# ------------------------------------------------------------------------------------ reports


@dataclass
class ArmSummary:
    arm: str
    params: int
    test_mean: float
    test_std: float
    diff_mean: float | None  # paired (same seed) difference to the base arm
    diff_std: float | None
    best_epoch_mean: float
    seconds_per_epoch: float
    seeds: int


def _std(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(results: list[RunResult]) -> list[ArmSummary]:
    """Per arm: test accuracy mean and sample std over seeds, and the paired difference to
    the base arm seed by seed (the seeds share data order and split, so pairing removes
    part of the noise)."""
    base = {r.seed: r.test_acc for r in results if r.arm == "base"}
    out = []
    for arm in [a for a in ARMS if any(r.arm == a for r in results)]:
        runs = [r for r in results if r.arm == arm]
        acc = [r.test_acc for r in runs]
        diffs = [r.test_acc - base[r.seed] for r in runs if r.seed in base] if arm != "base" else []
        secs = [s for r in runs for s in r.epoch_seconds]
        out.append(ArmSummary(arm, runs[0].params, statistics.fmean(acc), _std(acc),
                              statistics.fmean(diffs) if diffs else None, _std(diffs) if diffs else None,
                              statistics.fmean(r.best_epoch for r in runs), statistics.fmean(secs), len(runs)))
    return out


def paired_difference(results: list[RunResult], arm: str, other: str) -> tuple[float, float, int] | None:
    """Mean and std of ``arm - other`` test accuracy over the seeds both ran, or None."""
    theirs = {r.seed: r.test_acc for r in results if r.arm == other}
    diffs = [r.test_acc - theirs[r.seed] for r in results if r.arm == arm and r.seed in theirs]
    return (statistics.fmean(diffs), _std(diffs), len(diffs)) if diffs else None


TABLE_HEADER = ("| arm | parameters | test accuracy (mean ± std) | vs base, paired (mean ± std) | "
                "best epoch (mean) | seconds / epoch |")


def markdown_table(summaries: list[ArmSummary], results: list[RunResult], context: str) -> str:
    """The table the README shows, with one line per run below it (nothing hidden)."""
    base_params = next((s.params for s in summaries if s.arm == "base"), None)
    lines = [f"# aimgen experiment: {context}", "", TABLE_HEADER, "|---|---:|---:|---:|---:|---:|"]
    for s in summaries:
        growth = f" (+{(s.params - base_params) / base_params:.1%})" if base_params and s.arm != "base" else ""
        diff = "—" if s.diff_mean is None else f"{s.diff_mean * 100:+.2f} ± {s.diff_std * 100:.2f} pt"
        lines.append(f"| {s.arm} | {s.params:,}{growth} | {s.test_mean:.2%} ± {s.test_std:.2%} | {diff} | "
                     f"{s.best_epoch_mean:.1f} | {s.seconds_per_epoch:.3f} |")
    lines += ["", f"Test accuracy at the best validation epoch; std over {summaries[0].seeds} seed(s) "
              "(sample std). Paired: each seed's difference to the base arm with the same seed. "
              "Seconds per epoch: one training pass plus one validation pass.", ""]
    memory_vs_params = paired_difference(results, "aim", "wider")
    if memory_vs_params is not None:
        lines += [f"Memory vs parameters (aim minus wider, paired by seed): {memory_vs_params[0] * 100:+.2f} ± "
                  f"{memory_vs_params[1] * 100:.2f} pt over {memory_vs_params[2]} seed(s).", ""]
    lines += [
              "| arm | seed | epochs run | best epoch | best val | test |", "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.arm} | {r.seed} | {len(r.val_acc)} | {r.best_epoch} | {r.best_val:.2%} | "
                     f"{r.test_acc:.2%} |")
    return "\n".join(lines) + "\n"


def _curves(runs: list[RunResult]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Epochs, and per epoch the mean / min / max validation accuracy over the seeds still
    training there (early stopping ends seeds at different epochs)."""
    epochs, mean, lo, hi = [], [], [], []
    for e in range(max(len(r.val_acc) for r in runs)):
        vals = [r.val_acc[e] for r in runs if len(r.val_acc) > e]
        epochs.append(e + 1)
        mean.append(statistics.fmean(vals))
        lo.append(min(vals))
        hi.append(max(vals))
    return epochs, mean, lo, hi


def plot_curves(results: list[RunResult], path: Path, title: str) -> None:
    """Validation accuracy per epoch per arm: the mean over seeds with the min-max band and a
    dot at each seed's chosen epoch; the right panel zooms on the top, where arms differ."""
    try:
        import matplotlib
    except ImportError:
        raise ExperimentError("aimgen experiment draws its plot with matplotlib, which is not installed.",
                              hint="Install it (pip install matplotlib) and run again.") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120)
    arms = [a for a in ARMS if any(r.arm == a for r in results)]
    for ax in axes:
        for i, arm in enumerate(arms):
            runs = [r for r in results if r.arm == arm]
            epochs, mean, lo, hi = _curves(runs)
            ax.plot(epochs, mean, color=f"C{i}", label=f"{arm} ({runs[0].params:,} params, {len(runs)} seeds)")
            ax.fill_between(epochs, lo, hi, color=f"C{i}", alpha=0.18, linewidth=0)
            ax.scatter([r.best_epoch for r in runs], [r.best_val for r in runs], color=f"C{i}", s=14, zorder=3)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    best = [r.best_val for r in results]
    bottom = max(0.0, min(best) - 2 * (max(best) - min(best)) - 0.02)
    axes[1].set_ylim(bottom, min(1.0, max(best) + 0.01) + 0.002)
    axes[1].set_title("zoom on the top", fontsize=9)
    axes[0].set_ylabel("validation accuracy")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.text(0.01, 0.01, "line: mean over the seeds still training; band: min-max over seeds; "
             "dots: each seed's chosen (best validation) epoch", fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------------------------- the runner


@dataclass
class Arm:
    """How to build one arm's model for a seed."""

    name: str
    build: Callable[[int], nn.Module]


def make_arms(base: nn.Module, splits: Splits, options, names: Sequence[str], label: str
              ) -> tuple[list[Arm], dict]:
    """Build the arm factories and check each arm once on the data's shape, before any
    training (a conversion or shape error must not surface after the base arm trained)."""
    from . import api

    check_output(base, splits.input_shape, splits.num_classes, label)
    info: dict = {"base_params": count_params(base)}
    arms = [Arm("base", lambda seed: reinitialised(base, seed))]
    conversion = None
    if "aim" in names or "wider" in names:
        conversion = api.convert(base, torch.zeros(1, *splits.input_shape), options=options, source_name=label)
        info["aim_params"] = conversion.plan.aim_params
        info["aim_plan"] = conversion.plan.summary()

    def build_aim(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        model = conversion.build(load_weights=False)
        share_init(reinitialised(base, seed), model)
        return model

    if "aim" in names:
        check_output(build_aim(0), splits.input_shape, splits.num_classes, f"{label} (AiM)")
        arms.append(Arm("aim", build_aim))
    if "wider" in names:
        extra = conversion.plan.aim_params - count_params(base)
        probe, hidden = widened(base, extra, splits.input_shape, 0)
        check_output(probe, splits.input_shape, splits.num_classes, f"{label} (wider)")
        info["wider_params"], info["wider_hidden"] = count_params(probe), hidden
        info["wider_layer"] = output_layer(base, splits.input_shape)
        arms.append(Arm("wider", lambda seed: widened(reinitialised(base, seed), extra, splits.input_shape, seed)[0]))
    return [a for a in arms if a.name in names], info


class Progress:
    """A rich progress bar on a terminal; one plain line per finished run otherwise (logs,
    CI), so a redirected run stays readable."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.enabled = total, enabled
        self.live = enabled and sys.stderr.isatty()
        self._bar = None

    def __enter__(self) -> "Progress":
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, \
                TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
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
        line = (f"{r.arm:>5} seed {r.seed}: {len(r.val_acc)} epochs, best val {r.best_val:.2%} at epoch "
                f"{r.best_epoch}, test {r.test_acc:.2%}")
        if self._bar is not None:
            self._bar.console.print(line)
        elif self.enabled:
            print(line, file=sys.stderr, flush=True)


def run_experiment(arms: list[Arm], splits: Splits, seeds: Sequence[int], recipe: Recipe,
                   quiet: bool = False) -> list[RunResult]:
    """Every arm for every seed, seed-major, so a stopped run still has comparable pairs."""
    results = []
    with Progress(len(arms) * len(seeds) * recipe.epochs, enabled=not quiet) as progress:
        for seed in seeds:
            for arm in arms:
                progress.describe(f"{arm.name} seed {seed}")
                model = arm.build(seed)
                r = train_run(model, splits, arm.name, seed, recipe, progress.advance)
                progress.advance(recipe.epochs - len(r.val_acc))  # epochs saved by early stopping
                progress.done(r)
                results.append(r)
    return results


def write_outputs(out: Path, results: list[RunResult], info: dict, context: str, force: bool) -> list[Path]:
    """Plot, table and raw numbers, all or none (staged, then renamed into place)."""
    from .files import staged

    summaries = summarise(results)
    targets = [out / name for name in OUTPUT_FILES]
    with staged() as stage:
        plot_curves(results, stage.path_for(targets[0]), context)
        stage.write_text(targets[1], markdown_table(summaries, results, context))
        stage.write_text(targets[2], json.dumps({"context": context, **info,
                                                 "summary": [asdict(s) for s in summaries],
                                                 "runs": [asdict(r) for r in results]}, indent=1) + "\n")
    return targets


# ------------------------------------------------------------------------------------------ CLI


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.replace("x", ",").split(","))
        if h > 0 and w > 0:
            return h, w
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a size: give H,W, e.g. 224,224")


def add_parser(sub) -> None:
    """Register ``aimgen experiment``."""
    from .cli import _options_args

    p = sub.add_parser("experiment", help="train base, AiM and a widened base on the same data and compare",
                       description="Train the base model, its AiM version and the base widened to the AiM "
                       "parameter count, with one recipe and several seeds; choose epochs on validation; "
                       "report test accuracy once. Writes val_accuracy.png, results.md, results.json.")
    p.add_argument("target", metavar="FILE.py[:NAME]")
    p.add_argument("--data", required=True, metavar="DATA",
                   help="'digits' (scikit-learn's 8x8 digits) or an ImageFolder directory (DIR/CLASS/IMAGE)")
    p.add_argument("--out", default="experiment", metavar="DIR", help="output folder (default ./experiment)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per arm (default 3)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed, first-seed+1, ...")
    p.add_argument("--epochs", type=int, default=30, help="most epochs per run (default 30)")
    p.add_argument("--patience", type=int, default=8,
                   help="stop after this many epochs without a better validation accuracy; 0: never (default 8)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate (default 2e-3)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--input-size", type=_size, metavar="H,W", help="resize images to H,W (needed for a folder)")
    p.add_argument("--channels", type=int, help="image channels (default: the model's first conv, else 3)")
    p.add_argument("--limit", type=int, metavar="N", help="use at most N images per class (quick runs)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--split-seed", type=int, default=0, help="the split is fixed by this, not by the run seeds")
    p.add_argument("--arms", default="base,aim,wider", help="which arms to train (default base,aim,wider)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite existing result files in --out")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    _options_args(p)


def _check_args(args) -> list[str]:
    """Refuse nonsensical numbers before loading anything; returns the arm names."""
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown or "base" not in arms:
        raise ExperimentError(f"--arms {args.arms!r}: the arms are {', '.join(ARMS)} and base is always needed "
                              "(the others are compared with it).", hint="For example --arms base,aim.")
    for name in ("seeds", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise ExperimentError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1.")
    if args.patience < 0 or (args.limit is not None and args.limit < 1):
        raise ExperimentError("--patience must be >= 0 and --limit >= 1.")
    if not (0 < args.val_fraction < 1 and 0 < args.test_fraction < 1
            and args.val_fraction + args.test_fraction < 1):
        raise ExperimentError(f"--val-fraction {args.val_fraction} / --test-fraction {args.test_fraction}: "
                              "each must be between 0 and 1, leaving some data to train on.")
    return arms


def run(args) -> int:
    """``aimgen experiment``: check everything, train every arm and seed, write the results."""
    from .cli import _options
    from .files import check_targets
    from .loader import load_model

    names = _check_args(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ExperimentError(f"--out {out} is a file; it must be a folder.", hint="Choose another --out.")
    out.mkdir(parents=True, exist_ok=True)
    check_targets([out / name for name in OUTPUT_FILES], args.force)
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(args.target)
    label = f"{loaded.path.name}:{loaded.name}"
    channels = args.channels or infer_channels(loaded.model) or 3
    splits = load_splits(args.data, channels=channels, input_size=args.input_size, limit=args.limit,
                         fractions=(args.val_fraction, args.test_fraction), split_seed=args.split_seed)
    arms, info = make_arms(loaded.model, splits, _options(args), names, label)
    recipe = Recipe(args.epochs, args.patience, args.batch_size, args.lr, args.weight_decay, args.workers)
    context = f"{label} on {splits.description}"
    if not args.quiet:
        print(f"{context}; arms: {', '.join(a.name for a in arms)}; seeds: {args.seeds}; "
              f"up to {recipe.epochs} epochs (patience {recipe.patience})", file=sys.stderr)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    info["recipe"] = asdict(recipe)
    results = run_experiment(arms, splits, seeds, recipe, quiet=args.quiet)
    targets = write_outputs(out, results, info, context, args.force)
    print((out / "results.md").read_text(encoding="utf-8").split("\n\n")[1])
    print(f"wrote {', '.join(str(t) for t in targets)}")
    return 0
