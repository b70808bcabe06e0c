"""Digits and image folders: splitting, resizing, and bad input refused (clearly, before any
training) rather than failing mid-run."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("sklearn")

from aimgen.errors import AimgenError  # noqa: E402
from aimgen.experiment import load_splits  # noqa: E402
from test_experiment_runner import DIGITS, _args, _models, refused  # noqa: E402


def image_folder(root: Path, classes: dict[str, list[tuple[int, int]]]) -> Path:
    """DIR/CLASS/i.png with images of the given (width, height) sizes."""
    from PIL import Image

    for name, sizes in classes.items():
        (root / name).mkdir(parents=True)
        for i, size in enumerate(sizes):
            Image.new("RGB", size, color=(i * 40 % 255, 80, 160)).save(root / name / f"{i}.png")
    return root


def test_digits_are_scaled_and_split():
    s = load_splits("digits", channels=1, input_size=None, limit=None, fractions=(0.2, 0.2), split_seed=0)
    assert s.input_shape == (1, 8, 8) and s.num_classes == 10
    assert len(s.train) + len(s.val) + len(s.test) == 1797 and abs(len(s.test) - 359) <= 5
    x = torch.stack([s.train[i][0] for i in range(50)])
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.9


def test_image_folder_of_mixed_sizes_is_resized(tmp_path):
    from aimgen.cli import main

    data = image_folder(tmp_path / "data", {"cats": [(9, 7), (20, 31), (8, 8), (5, 12)] * 2,
                                           "dogs": [(8, 8), (40, 10), (11, 11), (3, 3)] * 2})
    splits = load_splits(str(data), channels=1, input_size=(8, 8), limit=None, fractions=(0.25, 0.25), split_seed=0)
    assert splits.input_shape == (1, 8, 8) and splits.classes == ["cats", "dogs"]
    assert all(splits.train[i][0].shape == (1, 8, 8) for i in range(len(splits.train)))
    out = tmp_path / "out"
    code = main(["experiment", f"{_models(tmp_path)}:build_model", "--data", str(data),
                 "--input-size", "8,8", "--out", str(out), "--arms", "base,aim", "--seeds", "1",
                 "--epochs", "1", "--val-fraction", "0.25", "--test-fraction", "0.25", "-q", "--threads", "1"])
    assert code == 0 and "| aim |" in (out / "results.md").read_text()


def test_directory_without_classes(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "loose.png").write_bytes(b"")
    msg = refused(tmp_path, DIGITS, "--data", str(tmp_path / "data"), "--input-size", "8,8")
    assert "no class folders" in msg and "DIR/CLASS/IMAGE" in msg


def test_class_without_images(tmp_path):
    data = image_folder(tmp_path / "data", {"a": [(8, 8)] * 3, "b": [(8, 8)] * 3})
    (data / "empty_class").mkdir()
    (data / "empty_class" / "notes.txt").write_text("no images here")
    msg = refused(tmp_path, DIGITS, "--data", str(data), "--input-size", "8,8")
    assert "hold no images" in msg and "empty_class" in msg


def test_unreadable_images_are_named(tmp_path):
    data = image_folder(tmp_path / "data", {"a": [(8, 8)] * 3, "b": [(8, 8)] * 3})
    (data / "b" / "broken.jpg").write_bytes(b"not a jpeg at all")
    good = (data / "a" / "0.png").read_bytes()
    (data / "a" / "truncated.png").write_bytes(good[: len(good) // 2])
    msg = refused(tmp_path, DIGITS, "--data", str(data), "--input-size", "8,8")
    assert "2 image file(s) cannot be read" in msg
    assert "broken.jpg" in msg and "truncated.png" in msg


def test_folder_needs_input_size(tmp_path):
    data = image_folder(tmp_path / "data", {"a": [(8, 8)] * 3, "b": [(8, 8)] * 3})
    assert "--input-size" in refused(tmp_path, DIGITS, "--data", str(data))


def test_too_few_samples_for_three_splits(tmp_path):
    data = image_folder(tmp_path / "data", {"a": [(8, 8)], "b": [(8, 8)]})
    msg = refused(tmp_path, DIGITS, "--data", str(data), "--input-size", "8,8")
    assert "too few" in msg and "2 samples" in msg


def test_digits_needs_scikit_learn(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(AimgenError, match=r"scikit-learn, which is not installed.*aimgen\[experiment\]"):
        load_splits("digits", channels=1, input_size=None, limit=None, fractions=(0.2, 0.2), split_seed=0)
    _ = _args  # the shared helpers come from the runner tests
