"""Reporting: per-arm summaries, paired differences with their standard errors, the markdown
tables the README shows, the validation-curve plots and results.json.

One *experiment* is one model on one data set with one memory configuration: every arm for
every seed. A single ``aimgen experiment`` run writes one; a sweep writes one page and one
plot per data set (one section and one row of panels per experiment on it) and a combined
summary table.
"""
from __future__ import annotations

import json
import math
import statistics
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from .arms import ARMS
from .errors import ExperimentError
from .training import RunResult

OUTPUT_FILES = ("val_accuracy.png", "results.md", "results.json")
TABLE_HEADER = ("| arm | parameters | test accuracy (mean ± std) | vs base, paired (mean ± std) | "
                "best epoch (mean) | seconds / epoch |")


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
    diff_se: float | None = None  # standard error of diff_mean: diff_std / sqrt(seeds)
    cpu_seconds: float = 0.0      # all runs of the arm together


def _std(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _se(values: Sequence[float]) -> float | None:
    return _std(values) / math.sqrt(len(values)) if len(values) > 1 else None


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
                              statistics.fmean(r.best_epoch for r in runs), statistics.fmean(secs), len(runs),
                              _se(diffs) if diffs else None, sum(r.cpu_seconds for r in runs)))
    return out


def paired_difference(results: list[RunResult], arm: str, other: str) -> tuple[float, float, int] | None:
    """Mean and std of ``arm - other`` test accuracy over the seeds both ran, or None."""
    theirs = {r.seed: r.test_acc for r in results if r.arm == other}
    diffs = [r.test_acc - theirs[r.seed] for r in results if r.arm == arm and r.seed in theirs]
    return (statistics.fmean(diffs), _std(diffs), len(diffs)) if diffs else None


def paired_text(results: list[RunResult], arm: str, other: str) -> str | None:
    """``+0.40 ± 0.31 pt (SE, 5 seeds)``: the paired mean difference and its standard error."""
    d = paired_difference(results, arm, other)
    if d is None:
        return None
    mean, std, n = d
    se = f"{std / math.sqrt(n) * 100:.2f}" if n > 1 else "n/a"
    return f"{mean * 100:+.2f} ± {se} pt (SE, {n} seed{'s' if n != 1 else ''})"


# ------------------------------------------------------------------------------------ tables


def arm_rows(summaries: list[ArmSummary]) -> list[str]:
    """The README's table: one line per arm."""
    base_params = next((s.params for s in summaries if s.arm == "base"), None)
    lines = [TABLE_HEADER, "|---|---:|---:|---:|---:|---:|"]
    for s in summaries:
        growth = f" (+{(s.params - base_params) / base_params:.1%})" if base_params and s.arm != "base" else ""
        diff = "—" if s.diff_mean is None else f"{s.diff_mean * 100:+.2f} ± {s.diff_std * 100:.2f} pt"
        lines.append(f"| {s.arm} | {s.params:,}{growth} | {s.test_mean:.2%} ± {s.test_std:.2%} | {diff} | "
                     f"{s.best_epoch_mean:.1f} | {s.seconds_per_epoch:.3f} |")
    return lines


def run_rows(results: list[RunResult]) -> list[str]:
    lines = ["| arm | seed | epochs run | best epoch | best val | test |", "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.arm} | {r.seed} | {len(r.val_acc)} | {r.best_epoch} | {r.best_val:.2%} | "
                     f"{r.test_acc:.2%} |")
    return lines


def notes(results: list[RunResult], summaries: list[ArmSummary], anchor: dict | None) -> list[str]:
    """The lines under the table: how to read it, the paired differences with their standard
    errors, and the published accuracy of the base architecture."""
    lines = [f"Test accuracy at the best validation epoch; std over {summaries[0].seeds} seed(s) "
             "(sample std). Paired: each seed's difference to the base arm with the same seed. "
             "Seconds per epoch: one training pass plus one validation pass.", ""]
    diffs = [(label, paired_text(results, a, b)) for label, a, b in
             (("AiM minus base", "aim", "base"), ("AiM minus wider", "aim", "wider"))]
    diffs = [(label, text) for label, text in diffs if text]
    if diffs:
        lines += ["Paired differences (mean ± standard error): " + "; ".join(f"{l}: {t}" for l, t in diffs) + ".", ""]
    memory_vs_params = paired_difference(results, "aim", "wider")
    if memory_vs_params is not None:
        lines += [f"Memory vs parameters (aim minus wider, paired by seed): {memory_vs_params[0] * 100:+.2f} ± "
                  f"{memory_vs_params[1] * 100:.2f} pt over {memory_vs_params[2]} seed(s).", ""]
    if anchor:
        base = next((s for s in summaries if s.arm == "base"), None)
        ours = f"; ours (base arm): {base.test_mean:.2%} ± {base.test_std:.2%}" if base else ""
        lines += [f"Published accuracy of the base architecture ({anchor['model']}): {anchor['mean']:.1f}% ± "
                  f"{anchor['std']:.1f} ({anchor['source']}, {anchor['statistic']}){ours}.", ""]
    return lines


def markdown_table(summaries: list[ArmSummary], results: list[RunResult], context: str,
                   anchor: dict | None = None) -> str:
    """The page of one experiment: the README's table, with one line per run below it (nothing hidden)."""
    lines = [f"# aimgen experiment: {context}", "", *arm_rows(summaries), "", *notes(results, summaries, anchor),
             *run_rows(results)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- plots


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


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ExperimentError("aimgen experiment draws its plot with matplotlib, which is not installed.",
                              hint="Install it (pip install 'aimgen[experiment]' or pip install matplotlib) "
                              "and run again.") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_panels(rows: list[tuple[str | None, list[RunResult]]], path: Path, title: str) -> None:
    """Validation accuracy per epoch per arm, one row of two panels per experiment: the mean
    over seeds with the min-max band and a dot at each seed's chosen epoch; the right panel
    zooms on the top, where arms differ."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 0.4 + 3.8 * len(rows)), dpi=110, squeeze=False)
    for row, (label, results) in zip(axes, rows):
        arms = [a for a in ARMS if any(r.arm == a for r in results)]
        for ax in row:
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
        row[1].set_ylim(bottom, min(1.0, max(best) + 0.01) + 0.002)
        row[1].set_title("zoom on the top", fontsize=9)
        row[0].set_ylabel("validation accuracy")
        if label:
            row[0].set_title(label, fontsize=9, loc="left")
        row[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.text(0.01, 0.005, "line: mean over the seeds still training; band: min-max over seeds; "
             "dots: each seed's chosen (best validation) epoch", fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def plot_curves(results: list[RunResult], path: Path, title: str) -> None:
    plot_panels([(None, results)], path, title)


# ----------------------------------------------------------------------------------- records


def aimgen_commit() -> str:
    """The git commit of the aimgen source that ran (``+dirty`` when aimgen/ or examples/
    differ from it), or ``unknown`` outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "aimgen", "examples"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def runs_from(data: list[dict]) -> list[RunResult]:
    return [RunResult(**r) for r in data]


def write_outputs(out: Path, results: list[RunResult], info: dict, context: str, force: bool,
                  anchor: dict | None = None) -> list[Path]:
    """One experiment's plot, table and raw numbers, all or none (staged, then renamed into place)."""
    from ..files import staged

    summaries = summarise(results)
    targets = [out / name for name in OUTPUT_FILES]
    with staged() as stage:
        plot_curves(results, stage.path_for(targets[0]), context)
        stage.write_text(targets[1], markdown_table(summaries, results, context, anchor))
        stage.write_text(targets[2], json.dumps({"context": context, "aimgen_commit": aimgen_commit(), **info,
                                                 "published": anchor,
                                                 "summary": [asdict(s) for s in summaries],
                                                 "runs": [asdict(r) for r in results]}, indent=1) + "\n")
    return targets
