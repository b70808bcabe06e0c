"""UCR/UEA time-series classification sets, read offline through the optional package aeon.

``--data ucr:NAME`` loads ``NAME_TRAIN.ts`` and ``NAME_TEST.ts`` from the sets that ship inside
aeon's wheel (ACSF1, ArrowHead, BasicMotions, GunPoint, ItalyPowerDemand, JapaneseVowels,
OSULeaf, PickupGestureWiimoteZ, ...) or from ``--ucr-dir DIR`` (``DIR/NAME/NAME_TRAIN.ts``, a
copy of the archive you downloaded yourself). aimgen never downloads anything.

* The official split is kept: the validation split is carved from the official train split
  (stratified, fixed by ``--split-seed``) and the official test split is the test split.
* Series of unequal length (JapaneseVowels, PickupGestureWiimoteZ) are resampled to the
  longest training length by linear interpolation, per channel (Ismail Fawaz et al. 2019
  resampled their multivariate sets to one length the same way, with a cubic spline).
* z-normalisation (``--znorm``): ``series`` (each series and channel to mean 0, std 1 over
  time, as is usual for the univariate UCR sets), ``channel`` (each channel with the mean and
  std of the training split, which keeps amplitude differences between series: in
  BasicMotions, standing and running differ mostly in amplitude), or ``none``. ``auto``, the
  default, is ``series`` for univariate sets and ``channel`` for multivariate ones.
* Input to the model: ``(batch, channels, length)``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Subset, TensorDataset

from .splits import Splits, cap_per_class, listing, stratified_split
from .errors import DataError

ZNORMS = ("auto", "series", "channel", "none")
INSTALL_HINT = "Install the experiment extra: pip install 'aimgen[experiment]' (or just pip install aeon)."


def _aeon_datasets():
    """aeon.datasets, or a DataError that says what to install."""
    try:
        import aeon.datasets as datasets
    except ImportError:
        raise DataError("--data ucr:NAME reads the UCR/UEA archive through the optional package aeon, "
                        "which is not installed.", hint=INSTALL_HINT) from None
    return datasets


def bundled_dir() -> Path:
    """The folder of the data sets inside aeon's wheel."""
    return Path(_aeon_datasets().__file__).parent / "data"


def _is_classification(train_file: Path) -> bool:
    """True when the .ts header says the file has class labels (regression sets ship too)."""
    with open(train_file, encoding="utf-8", errors="replace") as f:
        for line in f:
            text = line.strip().lower()
            if text.startswith("@classlabel"):
                return text.split()[1:2] == ["true"]
            if text.startswith("@data"):
                break
    return False


def available(extra_dir: str | Path | None = None) -> dict[str, Path]:
    """Every classification set that can be loaded offline: name -> folder holding
    ``NAME_TRAIN.ts`` and ``NAME_TEST.ts``. ``extra_dir`` (``--ucr-dir``) wins over the bundled copy."""
    roots = [bundled_dir()] + ([Path(extra_dir)] if extra_dir else [])
    found: dict[str, Path] = {}
    for root in roots:
        for train in sorted(root.glob("*/*_TRAIN.ts")):
            name = train.name[:-len("_TRAIN.ts")]
            if name == train.parent.name and (train.parent / f"{name}_TEST.ts").exists() \
                    and _is_classification(train):
                found[name] = train.parent
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def resolve(name: str, extra_dir: str | Path | None = None) -> tuple[str, Path]:
    """The set's canonical name and folder (names match case-insensitively), or a DataError
    that lists the available names."""
    if extra_dir is not None and not Path(extra_dir).is_dir():
        raise DataError(f"--ucr-dir {extra_dir}: no such directory.",
                        hint="Give the folder that holds NAME/NAME_TRAIN.ts and NAME/NAME_TEST.ts.")
    sets = available(extra_dir)
    by_lower = {k.lower(): k for k in sets}
    key = by_lower.get(name.strip().lower())
    if key is None:
        where = "aeon's bundled sets" + (f" and {extra_dir}" if extra_dir else "")
        raise DataError(f"--data ucr:{name}: no UCR/UEA classification set of that name is available offline "
                        f"(looked in {where}). Available: {', '.join(sets) or 'none'}.",
                        hint="aimgen never downloads data: for another set of the archive, download it "
                        "yourself and pass --ucr-dir DIR (DIR/NAME/NAME_TRAIN.ts and NAME_TEST.ts).")
    return key, sets[key]


def _series(x) -> list[torch.Tensor]:
    """aeon returns an (n, channels, length) array, or a list of (channels, length_i) arrays
    for unequal lengths: one float64 tensor per series."""
    return [torch.as_tensor(s, dtype=torch.float64) for s in x]


def _resample(series: list[torch.Tensor], length: int) -> torch.Tensor:
    """Every series to ``length`` steps by linear interpolation over its own span."""
    out = torch.empty(len(series), series[0].shape[0], length, dtype=torch.float64)
    for i, s in enumerate(series):
        if s.shape[-1] == length:
            out[i] = s
        elif s.shape[-1] == 1:
            out[i] = s.expand(-1, length)
        else:
            out[i] = torch.nn.functional.interpolate(s[None], size=length, mode="linear", align_corners=True)[0]
    return out


def znormalise(train: torch.Tensor, test: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``series``: each series and channel over time; ``channel``: each channel with the
    training split's statistics (applied to both splits); ``none``: unchanged."""
    if mode == "series":
        def per_series(x):
            mean, std = x.mean(-1, keepdim=True), x.std(-1, keepdim=True, unbiased=False)
            return (x - mean) / torch.where(std < 1e-8, torch.ones_like(std), std)
        return per_series(train), per_series(test)
    if mode == "channel":
        mean = train.mean(dim=(0, 2), keepdim=True)
        std = train.std(dim=(0, 2), keepdim=True, unbiased=False)
        std = torch.where(std < 1e-8, torch.ones_like(std), std)
        return (train - mean) / std, (test - mean) / std
    return train, test


def _class_order(labels) -> list[str]:
    """Class names in natural order (numbers by value, '10' after '9'), else alphabetical."""
    names = sorted({str(v) for v in labels})
    try:
        return sorted(names, key=float)
    except ValueError:
        return names


def load_ucr_splits(name: str, *, val_fraction: float, split_seed: int, limit: int | None = None,
                    extra_dir: str | Path | None = None, znorm: str = "auto") -> Splits:
    """The official train/test split of ``name``, a stratified validation split carved from
    train, resampled to one length and z-normalised (see the module docstring)."""
    if znorm not in ZNORMS:
        raise DataError(f"--znorm {znorm!r}: use one of {', '.join(ZNORMS)}.")
    datasets = _aeon_datasets()
    name, folder = resolve(name, extra_dir)
    loaded = {}
    for split in ("TRAIN", "TEST"):
        path = folder / f"{name}_{split}.ts"
        try:
            x, y = datasets.load_from_ts_file(str(path))
        except Exception as err:  # aeon raises several types for a malformed file
            raise DataError(f"--data ucr:{name}: reading {path} failed: {type(err).__name__}: {err}.",
                            hint="Check the file (or replace your copy of it in --ucr-dir).") from err
        loaded[split] = (_series(x), [str(v) for v in y])
    (train_x, train_y), (test_x, test_y) = loaded["TRAIN"], loaded["TEST"]
    if any(torch.isnan(s).any() for s in train_x + test_x):
        raise DataError(f"--data ucr:{name}: the set has missing values (NaN), which the experiment does "
                        "not impute.", hint="Choose another set, or fill the gaps in your copy (--ucr-dir).")
    classes = _class_order(train_y + test_y)
    official = (len(train_y), len(test_y))
    index = {c: i for i, c in enumerate(classes)}
    train_keep = cap_per_class([index[c] for c in train_y], limit)
    test_keep = cap_per_class([index[c] for c in test_y], limit)
    train_x, train_y = [train_x[i] for i in train_keep], [train_y[i] for i in train_keep]
    test_x, test_y = [test_x[i] for i in test_keep], [test_y[i] for i in test_keep]

    lengths = {s.shape[-1] for s in train_x + test_x}
    length = max(s.shape[-1] for s in train_x)
    train_t, test_t = _resample(train_x, length), _resample(test_x, length)
    channels = train_t.shape[1]
    mode = ("series" if channels == 1 else "channel") if znorm == "auto" else znorm
    train_t, test_t = znormalise(train_t, test_t, mode)

    labels = [index[c] for c in train_y]
    train_ds = TensorDataset(train_t.float(), torch.tensor(labels, dtype=torch.long))
    test_ds = TensorDataset(test_t.float(), torch.tensor([index[c] for c in test_y], dtype=torch.long))
    train_idx, val_idx, _ = stratified_split(labels, (val_fraction, 0.0), split_seed)
    if not train_idx or not val_idx:
        raise DataError(f"--data ucr:{name}: {len(labels)} training series are too few for a train / "
                        f"validation split ({len(train_idx)} / {len(val_idx)}).",
                        hint="Raise --limit or --val-fraction.")
    missing = sorted(set(range(len(classes))) - {labels[i] for i in train_idx})
    if missing:
        raise DataError(f"--data ucr:{name}: class(es) {listing([classes[i] for i in missing])} have no "
                        "training series left after the validation split.",
                        hint="Raise --limit or lower --val-fraction.")
    source = f"aeon {_aeon_version()} (bundled)" if folder.parent == bundled_dir() else str(folder)
    resampled = length if len(lengths) > 1 else None
    shape = (channels, length)
    kind = "univariate" if channels == 1 else f"{channels} channels"
    description = (f"UCR/UEA {name} ({kind}, length {length}{' after resampling' if resampled else ''}, "
                   f"{len(classes)} classes): {len(train_idx)} train / {len(val_idx)} val (from the official "
                   f"{len(labels)} train) / {len(test_ds)} test (official)"
                   f"{f', at most {limit} per class' if limit else ''}")
    meta = {"data": f"ucr:{name}", "name": name, "source": source, "channels": channels, "length": length,
            "resampled_from_lengths": [min(lengths), max(lengths)] if resampled else None, "znorm": mode,
            "official_train": official[0], "official_test": official[1], "limit": limit, "train": len(train_idx),
            "val": len(val_idx), "test": len(test_ds),
            "split": f"official test split; validation = {val_fraction:g} of the official train split "
                     f"(stratified, split seed {split_seed})"}
    return Splits(Subset(train_ds, train_idx), Subset(train_ds, val_idx), test_ds, classes, shape,
                  description, meta)


def _aeon_version() -> str:
    try:
        from importlib.metadata import version

        return version("aeon")
    except Exception:
        return "?"
