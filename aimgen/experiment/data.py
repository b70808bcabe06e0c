"""The data of an experiment: three splits and what the model must accept and produce.

``--data digits`` (scikit-learn's 8x8 digits), ``--data DIR`` (an ImageFolder directory) or
``--data ucr:NAME`` (a UCR/UEA time-series set, see ``ucr.py``). Digits and folders are split
train / validation / test here (stratified, fixed by ``--split-seed``); a UCR/UEA set keeps
its official test split and only the validation split is carved from its train split.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

from .errors import DataError
from .splits import Splits, cap_per_class, listing, stratified_split

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
UCR_PREFIX = "ucr:"


def load_digits(input_size: tuple[int, int] | None, limit: int | None) -> tuple[Dataset, list[int], list[str], str]:
    """scikit-learn's digits (1,797 8x8 grayscale images, 10 classes), scaled to [0, 1]."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise DataError("--data digits needs scikit-learn, which is not installed.",
                        hint="Install it (pip install 'aimgen[experiment]' or pip install scikit-learn), "
                        "or give an image folder.") from None
    bunch = sk_digits()
    keep = cap_per_class(bunch.target.tolist(), limit)
    x = torch.tensor(bunch.images[keep], dtype=torch.float32).unsqueeze(1) / 16.0
    if input_size is not None and tuple(input_size) != tuple(x.shape[-2:]):
        x = nn.functional.interpolate(x, size=input_size, mode="bilinear", align_corners=False)
    y = torch.tensor(bunch.target[keep], dtype=torch.long)
    return TensorDataset(x, y), y.tolist(), [str(c) for c in range(10)], "scikit-learn digits"


# ------------------------------------------------------------------------------ image folders


def scan_image_folder(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """Classes (sub-folders) and image files of an ImageFolder-style directory, refusing
    what would otherwise fail mid-training: no classes, an empty class, unreadable images."""
    if not root.exists():
        raise DataError(f"--data {root}: no such directory.",
                        hint="Give a folder with one sub-folder of images per class, --data digits or "
                        "--data ucr:NAME.")
    if not root.is_dir():
        raise DataError(f"--data {root}: not a directory.",
                        hint="Give a folder with one sub-folder of images per class, --data digits or "
                        "--data ucr:NAME.")
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
        raise DataError(f"--data {root}: {len(empty)} class folder(s) hold no images: {listing(empty)} "
                        f"(images are files ending in {', '.join(IMAGE_EXTENSIONS)}).",
                        hint="Add images to these folders or remove them; every class needs examples.")
    _check_readable(root, [p for p, _ in samples])
    return classes, samples


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
        raise DataError(f"--data {root}: {len(bad)} image file(s) cannot be read: {listing(bad)}.",
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


# ---------------------------------------------------------------------------------- dispatch


def load_splits(data: str, *, channels: int, input_size: tuple[int, int] | None, limit: int | None,
                fractions: tuple[float, float], split_seed: int, ucr_dir: str | None = None,
                znorm: str = "auto") -> Splits:
    """``digits``, ``ucr:NAME`` or an ImageFolder directory, split into train / val / test.
    For ``ucr:NAME`` only the validation fraction is used: the test split is the official one."""
    if data.lower().startswith(UCR_PREFIX):
        from .ucr import load_ucr_splits

        return load_ucr_splits(data[len(UCR_PREFIX):], val_fraction=fractions[0], split_seed=split_seed,
                               limit=limit, extra_dir=ucr_dir, znorm=znorm)
    if data == "digits":
        dataset, labels, classes, description = load_digits(input_size, limit)
        meta = {"data": "digits", "source": "sklearn.datasets.load_digits"}
    else:
        if input_size is None:
            raise DataError(f"--data {data}: give --input-size H,W for an image folder (images are resized "
                            "to it, since folders such as Stanford Dogs mix sizes).",
                            hint="For example --input-size 224,224.")
        classes, samples = scan_image_folder(Path(data))
        keep = cap_per_class([y for _, y in samples], limit)
        samples = [samples[i] for i in keep]
        dataset, labels = ImageFiles(samples, channels, input_size), [y for _, y in samples]
        description = f"{data} ({len(classes)} classes)"
        meta = {"data": str(data), "source": "image folder"}
    train, val, test = stratified_split(labels, fractions, split_seed)
    if not train or not val or not test:
        raise DataError(f"--data {data}: {len(labels)} samples are too few for a train / validation / test "
                        f"split ({len(train)} / {len(val)} / {len(test)}).",
                        hint="Add images, raise --limit, or change --val-fraction / --test-fraction.")
    shape = tuple(dataset[0][0].shape)
    meta.update(train=len(train), val=len(val), test=len(test), split="stratified train/val/test, "
                f"fractions {fractions}, split seed {split_seed}")
    return Splits(Subset(dataset, train), Subset(dataset, val), Subset(dataset, test), classes, shape,
                  f"{description}: {len(train)} train / {len(val)} val / {len(test)} test", meta)
