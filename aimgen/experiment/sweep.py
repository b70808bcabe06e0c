"""Sweeps: base / aim / wider over several data sets x models x memory configurations.

A sweep is a dict (the built-in sets below) or a JSON file of the same form::

    {"name": "mine", "seeds": 5,
     "groups": [{"data": ["ucr:GunPoint", "ucr:ArrowHead"],
                 "models": ["examples/fcn_tsc.py", "examples/resnet_tsc.py"],
                 "configs": {"default": {}, "full": {"tap_width": "full"}},
                 "recipe": {"epochs": 100, "patience": 0, "batch_size": 16, "lr": 0.001,
                            "schedule": "cosine"},
                 "data_options": {"val_fraction": 0.2}}]}

Every data x model x config of a group is one experiment (``run_one``), saved as soon as it
finishes in ``OUT/cells/`` (a stopped sweep resumes where it stopped; ``--force`` reruns).
The reports are rebuilt from the saved experiments after every run: ``OUT/DATA/results.md``
and ``OUT/DATA/val_accuracy.png`` (one section and one row of panels per model and
configuration), the combined table ``OUT/summary.md`` and ``OUT/results.json`` (every number
of every run, the sweep's definition, the command and the aimgen commit). Model paths are relative to the JSON file, or to the repository root
for the built-in sets (they use examples/).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import AimgenError
from ..options import Options
from .errors import ExperimentError
from .results import (arm_rows, notes, plot_panels, run_rows, runs_from, summarise)
from .runner import DataSpec, run_one
from .training import Recipe
from .cli import recipe_overrides

REPO_ROOT = Path(__file__).resolve().parents[2]
# The time-series recipe: 300 epochs instead of the papers' 1,500-2,000 (one CPU core), so a
# larger learning rate (3e-3, AdamW, cosine to 0) and a small batch (8) for enough steps; the
# epoch is chosen on validation. See docs/experiment/README.md for how it compares.
UCR_RECIPE = {"epochs": 300, "patience": 0, "batch_size": 8, "lr": 3e-3, "weight_decay": 1e-4,
              "schedule": "cosine"}
DIGITS_RECIPE = {"epochs": 60, "patience": 10, "batch_size": 64, "lr": 1e-2, "weight_decay": 1e-4,
                 "schedule": "constant"}
MAIN_UCR = ["ucr:GunPoint", "ucr:ItalyPowerDemand", "ucr:ArrowHead", "ucr:JapaneseVowels"]
TSC_MODELS = ["examples/fcn_tsc.py", "examples/resnet_tsc.py"]
MEMORY_CONFIGS = {
    "default": {},                                       # aimgen's: tap width 1, memory sized to a 5% budget
    "tap-full": {"tap_width": "full"},                   # the article's rule: every layer reads all the memory
    "mem-50176": {"memory_size": 50_176, "budget": 0.5},  # the article's memory size (7 x 7 x 1024 floats)
}
DIGITS_CONFIGS = {
    "default": {},                                        # a 16-float memory: the smallest configuration
    "mem-1024": {"memory_size": 1024, "budget": 1.0},     # 64 times more memory, +84% parameters
}

SETS: dict[str, dict] = {
    "quick": {
        "name": "quick",
        "description": "A check that the sweep runs end to end (seconds): one small data set, FCN, one seed, "
                       "two epochs. Its numbers mean nothing.",
        "seeds": 1,
        "groups": [{"data": ["ucr:ItalyPowerDemand"], "models": ["examples/fcn_tsc.py"],
                    "configs": {"default": {}},
                    "recipe": {**UCR_RECIPE, "epochs": 2}, "data_options": {"val_fraction": 0.2}}],
    },
    "main": {
        "name": "main",
        "description": "The README's comparison: four UCR/UEA sets x FCN and ResNet with aimgen's default memory "
                       "configuration, and digits x the digits CNN with the default (16-float) and a 1,024-float "
                       "memory; base / aim / wider, five seeds each.",
        "seeds": 5,
        "groups": [
            {"data": MAIN_UCR, "models": TSC_MODELS, "configs": {"default": {}}, "recipe": UCR_RECIPE,
             "data_options": {"val_fraction": 0.2}},
            {"data": ["digits"], "models": ["examples/digits_cnn.py"], "configs": DIGITS_CONFIGS,
             "recipe": DIGITS_RECIPE, "data_options": {"val_fraction": 0.2, "test_fraction": 0.2}},
        ],
    },
    "memory": {
        "name": "memory",
        "description": "Memory configurations on one data set x model: aimgen's default, the article's rule "
                       "(tap width full) and the article's memory size (50,176 floats, budget 50%). The default "
                       "experiment is the main sweep's (same settings: copy its cell to reuse it).",
        "seeds": 5,
        "groups": [{"data": ["ucr:ArrowHead"], "models": ["examples/fcn_tsc.py"], "configs": MEMORY_CONFIGS,
                    "recipe": UCR_RECIPE, "data_options": {"val_fraction": 0.2}}],
    },
}


def slug(data: str) -> str:
    """A folder name for a data set: ``ucr:GunPoint`` -> ``GunPoint``, a path -> its name."""
    text = data.split(":", 1)[1] if data.lower().startswith("ucr:") else Path(data).name or data
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or "data"


@dataclass
class Cell:
    """One experiment of a sweep."""

    data: str
    model: str            # as written in the sweep
    model_path: str       # resolved
    config: str
    options: dict
    recipe: dict
    seeds: list
    data_options: dict
    arms: list

    @property
    def key(self) -> str:
        return f"{slug(self.data)}/{Path(self.model).stem}/{self.config}"

    @property
    def filename(self) -> str:
        return self.key.replace("/", "__") + ".json"

    def spec(self) -> dict:
        """What must match for a saved experiment to be reused."""
        return {"data": self.data, "model": self.model, "config": self.config, "options": self.options,
                "recipe": self.recipe, "seeds": self.seeds, "data_options": self.data_options, "arms": self.arms}


def load_sweep(name: str) -> tuple[dict, Path]:
    """A built-in set, or a JSON file; returns it and the folder its model paths are relative to."""
    if name in SETS:
        return SETS[name], REPO_ROOT
    path = Path(name)
    if not path.is_file():
        raise ExperimentError(f"--sweep {name}: neither a built-in set ({', '.join(SETS)}) nor a JSON file.",
                              hint="Give one of the sets, or the path of a sweep JSON file.")
    try:
        sweep = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ExperimentError(f"--sweep {path}: not a readable JSON file: {err}.") from None
    if not isinstance(sweep, dict) or not isinstance(sweep.get("groups"), list) or not sweep["groups"]:
        raise ExperimentError(f"--sweep {path}: a sweep is a JSON object with a non-empty \"groups\" list.",
                              hint="See the form in docs/experiment/README.md.")
    sweep.setdefault("name", path.stem)
    return sweep, path.resolve().parent


def _resolve_model(model: str, root: Path) -> str:
    for candidate in (root / model, Path(model)):
        file = Path(str(candidate).split(":")[0]) if not candidate.exists() else candidate
        if file.exists():
            return str(candidate)
    raise ExperimentError(f"sweep model {model!r}: no such file (looked under {root} and the current folder).",
                          hint="The built-in sweeps use the examples/ of a source checkout: run them from there.")


def _check_config(sweep: str, config: str, options: dict) -> None:
    """A configuration's options, checked; the error names the sweep's own words (the field as
    written in the JSON, not a command-line flag)."""
    try:
        Options(**options).check()
    except TypeError as err:
        raise ExperimentError(f"sweep {sweep!r}, configuration {config!r}: {err}.",
                              hint="Options fields: " + ", ".join(f.name for f in dataclasses.fields(Options)) + ".") from None
    except AimgenError as err:
        raise ExperimentError(f"sweep {sweep!r}, configuration {config!r}: {err.message}",
                              hint=err.hint) from None


def expand(sweep: dict, root: Path, args, arms: list[str]) -> list[Cell]:
    """Every data x model x config of every group, with the command line's overrides
    (--seeds, --first-seed, recipe flags, --limit, --val-fraction, --ucr-dir, --znorm)."""
    seeds = args.seeds or int(sweep.get("seeds", 5))
    seed_list = list(range(args.first_seed, args.first_seed + seeds))
    overrides = recipe_overrides(args)
    cells = []
    for g, group in enumerate(sweep["groups"]):
        for name in ("data", "models"):
            if not isinstance(group.get(name), list) or not group[name]:
                raise ExperimentError(f"sweep {sweep['name']!r}, group {g + 1}: {name!r} must be a non-empty list.")
        recipe = {**asdict(Recipe()), **group.get("recipe", {}), **overrides, "workers": args.workers}
        data_options = {**group.get("data_options", {}), "split_seed": args.split_seed, "znorm": args.znorm}
        for flag, value in (("limit", args.limit), ("val_fraction", args.val_fraction), ("ucr_dir", args.ucr_dir)):
            if value is not None:
                data_options[flag] = value
        for data in group["data"]:
            for model in group["models"]:
                for config, options in (group.get("configs") or {"default": {}}).items():
                    _check_config(sweep["name"], config, options)  # before any training
                    cells.append(Cell(data, model, _resolve_model(model, root), config, dict(options),
                                      recipe, seed_list, data_options, list(arms)))
    keys = [c.key for c in cells]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ExperimentError(f"sweep {sweep['name']!r}: experiments appear twice: {', '.join(dupes)}.")
    return cells


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run_sweep(args, arms: list[str]) -> int:
    sweep, root = load_sweep(args.sweep)
    cells = expand(sweep, root, args, arms)
    selected = [c for c in cells if not args.only or any(t in c.key for t in args.only)]
    if not selected:
        raise ExperimentError(f"--only {' '.join(args.only)}: matches none of the sweep's experiments: "
                              f"{', '.join(c.key for c in cells)}.")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ExperimentError(f"--out {out} is a file; it must be a folder.", hint="Choose another --out.")
    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    if not args.quiet:
        print(f"sweep {sweep['name']}: {len(selected)} of {len(cells)} experiment(s) -> {out}", file=sys.stderr)
    for i, cell in enumerate(selected, 1):
        path = cells_dir / cell.filename
        if path.exists() and not args.force:
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("spec") == cell.spec():
                if not args.quiet:
                    print(f"[{i}/{len(selected)}] {cell.key}: finished already ({path}), kept", file=sys.stderr)
                continue
            raise ExperimentError(f"{path} holds a finished experiment {cell.key} with other settings than the "
                                  "sweep's now; aimgen does not overwrite results silently.",
                                  hint="Pass --force to rerun it, or choose another --out.")
        spec = DataSpec(cell.data, **{k: v for k, v in cell.data_options.items() if k in DataSpec.__dataclass_fields__})
        record = run_one(cell.model_path, spec, Options(**cell.options), Recipe(**cell.recipe), cell.seeds,
                         cell.arms, quiet=args.quiet, prefix=f"[{i}/{len(selected)}] {cell.key}: ")
        _write_json(path, {"key": cell.key, "config": cell.config, "spec": cell.spec(), "record": asdict(record)})
    written = write_reports(out, sweep, cells, command=" ".join(["aimgen", "experiment", *sys.argv[2:]])
                            if len(sys.argv) > 1 and sys.argv[1] == "experiment" else None)
    if not args.quiet:
        print((out / "summary.md").read_text(encoding="utf-8"))
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


# ------------------------------------------------------------------------------------ reports


def _pct(mean: float, std: float) -> str:
    return f"{mean * 100:.1f} ± {std * 100:.1f}"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def summary_row(key: str, config: str, record: dict) -> dict:
    """The numbers of one experiment for the combined table (fractions, not percent)."""
    runs = runs_from(record["runs"])
    by_arm = {s.arm: s for s in summarise(runs)}

    def diff(a, b):
        theirs = {r.seed: r.test_acc for r in runs if r.arm == b}
        d = [r.test_acc - theirs[r.seed] for r in runs if r.arm == a and r.seed in theirs]
        if not d:
            return None
        import statistics

        sd = statistics.stdev(d) if len(d) > 1 else 0.0
        return {"mean": statistics.fmean(d), "se": sd / len(d) ** 0.5 if len(d) > 1 else None, "n": len(d)}

    info = record["info"]
    return {"key": key, "data": record["data"], "model": record["model"], "config": config,
            "published": record.get("published"),
            "arms": {a: {"mean": s.test_mean, "std": s.test_std, "params": s.params, "seeds": s.seeds}
                     for a, s in by_arm.items()},
            "aim_minus_base": diff("aim", "base"), "aim_minus_wider": diff("aim", "wider"),
            "memory_shape": info.get("memory_shape"), "memory_floats": info.get("memory_floats"),
            "cpu_seconds": record.get("cpu_seconds", 0.0), "aimgen_commit": record.get("aimgen_commit")}


def _diff_text(d: dict | None) -> str:
    if not d:
        return "—"
    se = f"{d['se'] * 100:.2f}" if d["se"] is not None else "n/a"
    return f"{d['mean'] * 100:+.2f} ± {se}"


def summary_markdown(sweep: dict, rows: list[dict], commits: list[str], missing: list[str]) -> str:
    total = sum(r["cpu_seconds"] for r in rows)
    lines = [f"# aimgen experiment sweep: {sweep['name']}", "", sweep.get("description", ""), "",
             "Test accuracy in percent, mean ± std over seeds; differences are paired by seed, in points, "
             "mean ± standard error. Published: the base architecture's accuracy as published (source in each "
             "data set's page). Memory: the AiM memory's shape (floats).", "",
             "| data | model | memory config | base (ours) | published base | aim | wider | aim − base | "
             "aim − wider | parameters base → aim | memory | seeds | CPU |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        arms = r["arms"]
        cell = {a: _pct(arms[a]["mean"], arms[a]["std"]) if a in arms else "—" for a in ("base", "aim", "wider")}
        pub = f"{r['published']['mean']:.1f} ± {r['published']['std']:.1f}" if r["published"] else "—"
        params = f"{arms['base']['params']:,}"
        if "aim" in arms:
            params += f" → {arms['aim']['params']:,} (+{arms['aim']['params'] / arms['base']['params'] - 1:.1%})"
        shape = "×".join(map(str, r["memory_shape"])) if r["memory_shape"] else "—"
        mem = f"{shape} = {r['memory_floats']:,}" if r["memory_floats"] else shape
        lines.append(f"| {slug(r['data'])} | {r['model'].split(':')[0].removesuffix('.py')} | {r['config']} | "
                     f"{cell['base']} | {pub} | {cell['aim']} | {cell['wider']} | {_diff_text(r['aim_minus_base'])} | "
                     f"{_diff_text(r['aim_minus_wider'])} | {params} | {mem} | {arms['base']['seeds']} | "
                     f"{_hours(r['cpu_seconds'])} |")
    lines += ["", f"CPU time, all experiments: {_hours(total)} (process CPU time, one torch thread). "
              f"aimgen commit(s): {', '.join(commits) or 'unknown'}."]
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def dataset_markdown(data: str, entries: list[tuple[str, dict]]) -> str:
    first = entries[0][1]
    description = first["context"].split(" on ", 1)[-1]
    lines = [f"# {slug(data)}: does memory help?", "", f"Data: {description}.", ""]
    meta = first["info"].get("data", {})
    if meta.get("split"):
        lines += [f"Split: {meta['split']}." + (f" Normalisation: {meta['znorm']}." if meta.get("znorm") else ""), ""]
    for config, record in entries:
        info = record["info"]
        runs = runs_from(record["runs"])
        summaries = summarise(runs)
        options = Options(**info.get("options", {})).describe() if info.get("options") else ""
        lines += [f"## {record['model']}, memory configuration: {config}", "",
                  f"AiM plan: {info.get('aim_plan', '—')}. Options: `{options}`. Recipe: "
                  f"{_recipe_text(info.get('recipe', {}))}. CPU time: {_hours(record.get('cpu_seconds', 0.0))}.", "",
                  *arm_rows(summaries), "", *notes(runs, summaries, record.get("published")), *run_rows(runs), ""]
    return "\n".join(lines)


def _recipe_text(r: dict) -> str:
    if not r:
        return "—"
    stop = f"early stop after {r['patience']} epochs without improvement" if r.get("patience") else "no early stop"
    return (f"AdamW lr {r['lr']:g} ({r['schedule']}), weight decay {r['weight_decay']:g}, batch {r['batch_size']}, "
            f"up to {r['epochs']} epochs, {stop}; the epoch is chosen on validation accuracy (ties: lower "
            "validation loss)")


def write_reports(out: Path, sweep: dict, cells: list[Cell], command: str | None = None) -> list[Path]:
    """Rebuild every report from the saved experiments of the sweep's cells."""
    saved: list[tuple[Cell, dict]] = []
    missing = []
    for cell in cells:
        path = out / "cells" / cell.filename
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("spec") == cell.spec():
                saved.append((cell, data["record"]))
                continue
        missing.append(cell.key)
    written: list[Path] = []
    by_data: dict[str, list[tuple[str, dict]]] = {}
    for cell, record in saved:
        by_data.setdefault(cell.data, []).append((f"{Path(cell.model).stem} / {cell.config}", record))
    for data, entries in by_data.items():
        folder = out / slug(data)
        folder.mkdir(parents=True, exist_ok=True)
        md = dataset_markdown(data, [(label.split(" / ")[1], rec) for label, rec in entries])
        (folder / "results.md").write_text(md, encoding="utf-8")
        plot_panels([(f"{rec['model']} — memory: {label.split(' / ')[1]}", runs_from(rec["runs"]))
                     for label, rec in entries], folder / "val_accuracy.png", f"{slug(data)}: validation accuracy")
        written += [folder / "results.md", folder / "val_accuracy.png"]
    rows = [summary_row(cell.key, cell.config, record) for cell, record in saved]
    commits = sorted({r["aimgen_commit"] for r in rows if r.get("aimgen_commit")})
    (out / "summary.md").write_text(summary_markdown(sweep, rows, commits, missing), encoding="utf-8")
    _write_json(out / "results.json", {
        "sweep": sweep, "command": command, "aimgen_commits": commits,
        "cpu_seconds": sum(r["cpu_seconds"] for r in rows), "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "not_run": missing, "summary": rows,
        "experiments": [{"key": cell.key, "config": cell.config, "spec": cell.spec(), "record": record}
                        for cell, record in saved]})
    written += [out / "summary.md", out / "results.json"]
    return written
