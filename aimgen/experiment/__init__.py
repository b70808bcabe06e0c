"""aimgen experiment: does memory help *this* model on *this* data?

The source article's result (ResNet50 on Stanford Dogs, 15.14% -> 20.06%) came from one run per
arm, with model selection on the test split and a different stem in the memory arm. This
command avoids each of those faults:

* three arms trained with one recipe: ``base``, ``aim`` (``aimgen.convert`` of the base) and
  ``wider``, the base with as many extra parameters as the AiM model has, so "more
  parameters" and "memory" can be told apart;
* several seeds per arm; within a seed every arm sees the same split, the same batches in the
  same order and starts from the same weights wherever the arms share a layer;
* a train / validation / test split (for UCR/UEA sets: the official test split, validation
  carved from the official train split); the epoch is chosen on validation only, and the test
  split is evaluated once per run, at that epoch.

Modules, one job each: ``splits`` (stratified splits), ``data`` (digits, image folders), ``ucr`` (UCR/UEA sets
through aeon), ``arms`` (building the base for the data, the AiM and wider arms), ``training``
(the recipe and the runs), ``results`` (summaries, tables, plots, results.json), ``anchors``
(published accuracies, ``anchors.json``), ``runner`` (one experiment), ``sweep`` (data sets x
models x memory configurations), ``command`` (``run``: one experiment or a sweep) and ``cli``
(the parser).

The CLI calls exactly two names: ``add_parser(sub)`` and ``run(args)``.
"""
from .arms import (ARMS, ParallelBranch, build_base, check_output, count_params, infer_channels,
                   make_arms, output_layer, reinitialised, share_init, widened)
from .cli import add_parser
from .command import run
from .data import load_splits
from .errors import DataError, ExperimentError
from .results import OUTPUT_FILES, TABLE_HEADER, markdown_table, paired_difference, summarise
from .runner import DataSpec, Record, run_one
from .splits import Splits, stratified_split
from .training import Recipe, RunResult, train_run

__all__ = [
    "ARMS", "DataError", "DataSpec", "ExperimentError", "OUTPUT_FILES", "ParallelBranch", "Recipe", "Record",
    "RunResult", "Splits", "TABLE_HEADER", "add_parser", "build_base", "check_output", "count_params",
    "infer_channels", "load_splits", "make_arms", "markdown_table", "output_layer", "paired_difference",
    "reinitialised", "run", "run_one", "share_init", "stratified_split", "summarise", "train_run", "widened",
]
