"""The ``aimgen experiment`` parser and the checks of its arguments (nothing is loaded here)."""
from __future__ import annotations

import argparse

from ..options import Options
from .arms import ARMS
from .errors import ExperimentError
from .training import SCHEDULES, Recipe
from .ucr import ZNORMS

SINGLE_DEFAULTS = {"seeds": 3, "val_fraction": 0.2}
RECIPE_FLAGS = ("epochs", "patience", "batch_size", "lr", "weight_decay", "schedule")


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.replace("x", ",").split(","))
        if h > 0 and w > 0:
            return h, w
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a size: give H,W, e.g. 224,224")


def add_parser(sub) -> None:
    """Register ``aimgen experiment`` on the CLI's sub-parsers."""
    d = Recipe()
    p = sub.add_parser("experiment", help="train base, AiM and a widened base on the same data and compare",
                       description="Train the base model, its AiM version and the base widened to the AiM "
                       "parameter count, with one recipe and several seeds; choose epochs on validation; "
                       "report test accuracy once. Writes val_accuracy.png, results.md, results.json. "
                       "With --sweep, runs a set of such experiments (data sets x models x memory "
                       "configurations) and writes one page and plot per data set and a summary table.")
    p.add_argument("target", metavar="FILE.py[:NAME]", nargs="?",
                   help="the base model: a class or builder callable with no argument; one that also takes "
                   "in_channels= / num_classes= keywords is built with the data's values")
    p.add_argument("--data", metavar="DATA",
                   help="'digits' (scikit-learn's 8x8 digits), 'ucr:NAME' (a UCR/UEA time-series set read "
                   "offline through aeon: pip install 'aimgen[experiment]'; official test split) or an "
                   "ImageFolder directory (DIR/CLASS/IMAGE)")
    p.add_argument("--sweep", metavar="SET|FILE.json",
                   help="run a sweep instead of one experiment: 'main' (the README's), 'memory' (memory "
                   "configurations), 'quick' (seconds, for tests) or a JSON file of the same form")
    p.add_argument("--only", action="append", default=[], metavar="TEXT",
                   help="with --sweep: run only the experiments whose key (DATA/MODEL/CONFIG) contains TEXT "
                   "(repeatable); the reports still cover every finished experiment of the sweep")
    p.add_argument("--out", default="experiment", metavar="DIR", help="output folder (default ./experiment)")
    p.add_argument("--seeds", type=int, help="seeds per arm (default 3; a sweep's own number with --sweep)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed, first-seed+1, ...")
    p.add_argument("--epochs", type=int, help=f"most epochs per run (default {d.epochs})")
    p.add_argument("--patience", type=int,
                   help=f"stop after this many epochs without a better validation score; 0: never (default "
                   f"{d.patience})")
    p.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=float, help=f"AdamW learning rate (default {d.lr:g})")
    p.add_argument("--weight-decay", type=float, help=f"default {d.weight_decay:g}")
    p.add_argument("--schedule", choices=SCHEDULES,
                   help=f"learning rate: constant, or cosine annealing to 0 over --epochs (default {d.schedule})")
    p.add_argument("--input-size", type=_size, metavar="H,W", help="resize images to H,W (needed for a folder)")
    p.add_argument("--channels", type=int, help="image channels (default: the model's first conv, else 3)")
    p.add_argument("--limit", type=int, metavar="N", help="use at most N samples per class (quick runs)")
    p.add_argument("--val-fraction", type=float,
                   help="validation share (of the official train split for ucr:NAME); default 0.2")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="test share for digits and folders (ucr:NAME keeps its official test split)")
    p.add_argument("--split-seed", type=int, default=0, help="the split is fixed by this, not by the run seeds")
    p.add_argument("--ucr-dir", metavar="DIR",
                   help="also look for ucr:NAME in DIR/NAME/NAME_TRAIN.ts and NAME_TEST.ts (a copy you "
                   "downloaded; aimgen never downloads)")
    p.add_argument("--znorm", choices=ZNORMS, default="auto",
                   help="ucr:NAME normalisation: per series, per channel (training statistics) or none; auto "
                   "(default): per series for univariate sets, per channel for multivariate ones")
    p.add_argument("--arms", default="base,aim,wider", help="which arms to train (default base,aim,wider)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes (default 0)")
    p.add_argument("--force", action="store_true",
                   help="overwrite existing result files in --out (with --sweep: rerun finished experiments)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    Options.add_arguments(p, "transform options of the AiM arm (defaults: see README)")


def check_args(args) -> list[str]:
    """Refuse nonsensical numbers before loading anything; returns the arm names."""
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown or "base" not in arms:
        raise ExperimentError(f"--arms {args.arms!r}: the arms are {', '.join(ARMS)} and base is always needed "
                              "(the others are compared with it).", hint="For example --arms base,aim.")
    for name in ("seeds", "epochs", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ExperimentError(f"--{name.replace('_', '-')} {value}: must be at least 1.")
    if (args.patience is not None and args.patience < 0) or (args.limit is not None and args.limit < 1):
        raise ExperimentError("--patience must be >= 0 and --limit >= 1.")
    val = args.val_fraction if args.val_fraction is not None else SINGLE_DEFAULTS["val_fraction"]
    if not (0 < val < 1 and 0 < args.test_fraction < 1 and val + args.test_fraction < 1):
        raise ExperimentError(f"--val-fraction {val} / --test-fraction {args.test_fraction}: "
                              "each must be between 0 and 1, leaving some data to train on.")
    if args.sweep:
        if args.target or args.data:
            raise ExperimentError("--sweep runs the data sets and models of its set; do not also give a model "
                                  "file or --data.", hint="Either FILE.py --data DATA, or --sweep SET.")
        if Options.from_args(args) != Options():
            raise ExperimentError("--sweep takes its memory configurations from the sweep set; transform options "
                                  "given on the command line would apply to none of them.",
                                  hint="Write the configuration into a sweep JSON file (see "
                                  "docs/experiment/README.md) and pass --sweep FILE.json.")
    elif not args.target or not args.data:
        raise ExperimentError("aimgen experiment needs a model file and --data (or --sweep SET).",
                              hint="For example: aimgen experiment examples/fcn_tsc.py --data ucr:GunPoint, "
                              "or aimgen experiment --sweep quick.")
    return arms


def recipe_overrides(args) -> dict:
    """The recipe fields given on the command line (the rest come from defaults or the sweep)."""
    return {name: getattr(args, name) for name in RECIPE_FLAGS if getattr(args, name) is not None}
