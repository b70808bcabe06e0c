"""``aimgen experiment``: one experiment (``run_one``) or a sweep (``sweep.run_sweep``)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..files import check_targets
from ..options import Options
from .cli import SINGLE_DEFAULTS, check_args, recipe_overrides
from .errors import ExperimentError
from .results import OUTPUT_FILES, runs_from, summarise, write_outputs
from .runner import DataSpec, run_one
from .sweep import run_sweep
from .training import Recipe


def _data_spec(args) -> DataSpec:
    val = args.val_fraction if args.val_fraction is not None else SINGLE_DEFAULTS["val_fraction"]
    return DataSpec(args.data, val, args.test_fraction, args.split_seed, args.limit, args.input_size,
                    args.channels, args.ucr_dir, args.znorm)


def run(args) -> int:
    """``aimgen experiment``: check everything, train every arm and seed, write the results."""
    names = check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sweep:
        return run_sweep(args, names)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ExperimentError(f"--out {out} is a file; it must be a folder.", hint="Choose another --out.")
    out.mkdir(parents=True, exist_ok=True)
    check_targets([out / name for name in OUTPUT_FILES], args.force)
    recipe = Recipe(**recipe_overrides(args), workers=args.workers)
    seeds = range(args.first_seed, args.first_seed + (args.seeds or SINGLE_DEFAULTS["seeds"]))
    record = run_one(args.target, _data_spec(args), Options.from_args(args), recipe, seeds, names,
                     quiet=args.quiet)
    results = runs_from(record.runs)
    info = {**record.info, "cpu_seconds": record.cpu_seconds, "wall_seconds": record.wall_seconds}
    targets = write_outputs(out, results, info, record.context, args.force, record.published)
    print((out / "results.md").read_text(encoding="utf-8").split("\n\n")[1])
    base = next(s for s in summarise(results) if s.arm == "base")
    if record.published:
        print(f"published {record.published['model']} on {record.published['dataset']}: "
              f"{record.published['mean']:.1f}% ± {record.published['std']:.1f} ({record.published['source']}); "
              f"base arm here: {base.test_mean:.2%} ± {base.test_std:.2%}")
    print(f"wrote {', '.join(str(t) for t in targets)}")
    return 0
