"""Running an experiment: ``run_one``, which every path goes through (load the data, build
the arms, train every arm and seed, return the record)."""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

from ..options import Options
from .anchors import published
from .arms import build_base, infer_channels, load_base, make_arms
from .data import load_splits
from .results import aimgen_commit
from .training import Recipe, run_experiment


@dataclass
class DataSpec:
    """Which data, and how to split and prepare it."""

    data: str
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    split_seed: int = 0
    limit: int | None = None
    input_size: tuple[int, int] | None = None
    channels: int | None = None
    ucr_dir: str | None = None
    znorm: str = "auto"


@dataclass
class Record:
    """One experiment: one model on one data set with one memory configuration, every arm
    and seed. What results.json keeps, and what the reports are made from."""

    data: str
    model: str                 # FILE.py:NAME
    context: str               # "MODEL on DATA DESCRIPTION"
    info: dict                 # parameters, plan, data meta, recipe, options
    runs: list = field(default_factory=list)
    published: dict | None = None
    aimgen_commit: str = "unknown"
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0


def run_one(target: str, spec: DataSpec, options: Options, recipe: Recipe, seeds: Sequence[int],
            arms: Sequence[str], quiet: bool = False, prefix: str = "") -> Record:
    """Load, build and check everything before any training, then train every arm and seed."""
    wall, cpu = time.perf_counter(), time.process_time()
    options.check()
    loaded = load_base(target)
    channels = spec.channels or infer_channels(loaded[0].model) or 3
    splits = load_splits(spec.data, channels=channels, input_size=spec.input_size, limit=spec.limit,
                         fractions=(spec.val_fraction, spec.test_fraction), split_seed=spec.split_seed,
                         ucr_dir=spec.ucr_dir, znorm=spec.znorm)
    base = build_base(target, splits.channels, splits.num_classes, loaded=loaded)
    arm_list, info = make_arms(base.model, splits.input_shape, splits.num_classes, options, arms, base.label)
    anchor = published(splits.meta.get("name"), base.published_as)
    context = f"{base.label} on {splits.description}"
    if not quiet:
        print(f"{prefix}{context}; arms: {', '.join(a.name for a in arm_list)}; seeds: {len(seeds)}; "
              f"up to {recipe.epochs} epochs (patience {recipe.patience}, {recipe.schedule} lr {recipe.lr:g})",
              file=sys.stderr, flush=True)
    info.update(recipe=asdict(recipe), options=options.to_dict(), data=splits.meta, built_with=base.built_with,
                published_as=base.published_as, seeds=list(seeds))
    results = run_experiment(arm_list, splits, seeds, recipe, quiet=quiet, prefix=prefix)
    return Record(spec.data, base.label, context, info, [asdict(r) for r in results],
                  asdict(anchor) if anchor else None, aimgen_commit(),
                  time.process_time() - cpu, time.perf_counter() - wall)
