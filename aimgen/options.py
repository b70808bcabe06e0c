"""The options of the transform, defined once.

``Options`` is what the Python API takes (``aimgen.convert(model, x, memory_size=4096)``) and
what the command line builds from its flags. Each field declares its flag, its help text and
its default here, so the CLI (``aimgen convert``, ``diff``, ``experiment``) adds the same
arguments from one place, and a library error can name the field (``memory_size=``) while the
CLI translates it to the flag (``--memory-size``).
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields

from .errors import PlanError

DEFAULT_MEMORY_SIZE = 50_176  # 7 x 7 x 1024: one 224 x 224 channel, the article's size
DEFAULT_BUDGET = 0.05         # growth as a fraction of the base parameters, when not given
DEFAULT_RANK = 8

FORMS = ("sum", "literal")
GROUP_KERNELS = ("pointwise", "full")
SIZES = ("auto", "any", "example")


def _opt(default, flag: str, help: str, **argparse_kwargs):
    """A dataclass field that knows its command-line flag and help text."""
    meta = {"flag": flag, "help": help, "argparse": argparse_kwargs}
    if isinstance(default, list):
        return field(default_factory=list, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Options:
    """Every number and choice of the transform. ``None`` means: aimgen chooses (see docs/transform.md)."""

    memory_size: int | None = _opt(
        None, "--memory-size",
        f"memory floats (default: {DEFAULT_MEMORY_SIZE:,}, shrunk until the growth fits the budget)",
        type=int, metavar="N")
    tap_width: int | str = _opt(
        1, "--tap-width",
        "memory channels each tapped layer reads, or 'full' (the article's rule: the whole memory "
        "reshaped to fill each map). Default: 1", metavar="K|full")
    form: str = _opt(
        "sum", "--form",
        "how a tap is written: 'sum' (default: layer(x) + memory_layer(m), base weights keep their "
        "shapes) or 'literal' (torch.cat([x, m]) into a widened layer, as in the article)",
        choices=FORMS)
    group_kernel: str = _opt(
        "pointwise", "--group-kernel",
        "the memory's kernel in grouped and depthwise convs: 'pointwise' (default: 1x1, reads the "
        "memory in every group at 1/k^2 of the cost) or 'full' (the layer's own kernel)",
        choices=GROUP_KERNELS)
    layers: list[str] = _opt(
        [], "--layers",
        "tap only these: a layer type (Conv2d, Linear, F.conv2d) or a qualified-name glob "
        "(layer4.*). Repeatable or comma separated. Default: every weight layer",
        action="append", metavar="PATTERN")
    skip: list[str] = _opt(
        [], "--skip", "never tap these (same patterns as --layers). Default: none",
        action="append", metavar="PATTERN")
    updates: str = _opt(
        "stages", "--updates",
        "where update blocks go: 'stages' (default: the end of every resolution stage), 'every' "
        "(before every tapped layer), 'none', or module-name globs, comma separated",
        metavar="WHERE")
    update_rank: int | None = _opt(
        None, "--update-rank",
        f"bottleneck width of update blocks (default: min({DEFAULT_RANK}, memory channels))",
        type=int, metavar="R")
    carry_rate: float = _opt(
        0.1, "--carry-rate",
        "how fast the carry follows the final memory in train() (0 = no carry, 1 = the article's "
        "literal hand-over). Default: 0.1", type=float, metavar="RATE")
    budget: float | None = _opt(
        None, "--budget",
        f"max parameter growth as a fraction of the base (default: {DEFAULT_BUDGET:g}, i.e. "
        f"{DEFAULT_BUDGET:.0%} of the base parameters; given explicitly it is strict)",
        type=float, metavar="FRACTION")
    leaf: list[str] = _opt(
        [], "--leaf",
        "keep this submodule whole (not traced into), e.g. one torch.fx cannot trace. Repeatable. "
        "Default: none (aimgen keeps whole what it cannot trace and says so)",
        action="append", metavar="MODULE")
    sizes: str = _opt(
        "auto", "--sizes",
        "input sizes besides the batch where the model is captured with torch.export: 'auto' "
        "(default: symbolic where the exporter reasons about them within 2 minutes, else fixed at the "
        "example's, as the header then says), 'any' (always symbolic, however long that takes) or "
        "'example' (fixed at the example's: a fast conversion for one input size)",
        choices=SIZES)
    flat: bool = _opt(
        False, "--flat",
        "write the model as one flat forward (as torch.fx would) instead of one class per block. "
        "Default: off, one class per block",
        action="store_true")

    def __post_init__(self):
        # lists arrive comma separated from the CLI, or as tuples from callers: one shape here
        for name in ("layers", "skip", "leaf"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = [value]
            object.__setattr__(self, name, [v.strip() for item in value for v in str(item).split(",") if v.strip()])
        width = self.tap_width
        if isinstance(width, str) and width != "full":
            try:
                object.__setattr__(self, "tap_width", int(width))
            except ValueError:
                raise PlanError(f"tap_width={width!r}: give a number of channels, or 'full'.",
                                field="tap_width") from None

    def check(self) -> None:
        """Refuse values no plan can meet, naming the field."""
        if self.memory_size is not None and self.memory_size < 1:
            raise PlanError(f"memory_size={self.memory_size}: must be a positive number of floats.",
                            field="memory_size")
        if not (self.tap_width == "full" or (isinstance(self.tap_width, int) and self.tap_width >= 1)):
            raise PlanError(f"tap_width={self.tap_width!r}: give a number of channels >= 1, or 'full'.",
                            field="tap_width")
        if self.form not in FORMS:
            raise PlanError(f"form={self.form!r}: use one of {', '.join(FORMS)}.", field="form")
        if self.group_kernel not in GROUP_KERNELS:
            raise PlanError(f"group_kernel={self.group_kernel!r}: use one of {', '.join(GROUP_KERNELS)}.",
                            field="group_kernel")
        if self.sizes not in SIZES:
            raise PlanError(f"sizes={self.sizes!r}: use one of {', '.join(SIZES)}.", field="sizes")
        if not 0.0 <= self.carry_rate <= 1.0:
            raise PlanError(f"carry_rate={self.carry_rate}: must be between 0 (no carry) and 1.",
                            field="carry_rate")
        if self.budget is not None and self.budget <= 0:
            raise PlanError(f"budget={self.budget}: must be a positive fraction, e.g. 0.05 for 5%.",
                            field="budget")
        if self.update_rank is not None and self.update_rank < 1:
            raise PlanError(f"update_rank={self.update_rank}: must be >= 1.", field="update_rank")

    def describe(self) -> str:
        """One line for the generated file's header: the choices that shape the output."""
        parts = [
            f"memory_size={self.memory_size or 'auto'}", f"tap_width={self.tap_width}", f"form={self.form}",
            f"updates={self.updates}", f"update_rank={self.update_rank or 'auto'}",
            f"carry_rate={self.carry_rate}", f"budget={self.budget if self.budget is not None else 'auto'}",
        ]
        if self.group_kernel != "pointwise":
            parts.append(f"group_kernel={self.group_kernel}")
        for name in ("layers", "skip", "leaf"):
            if getattr(self, name):
                parts.append(f"{name}={','.join(getattr(self, name))}")
        if self.sizes != "auto":
            parts.append(f"sizes={self.sizes}")
        if self.flat:
            parts.append("flat")
        return " ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    # --- the command line ------------------------------------------------------------------
    @staticmethod
    def flag(name: str) -> str:
        """The command-line flag of a field: ``memory_size`` -> ``--memory-size``."""
        return _FIELDS[name].metadata["flag"]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, title: str = "transform options") -> None:
        """Add one flag per field to ``parser`` (argparse dest = the field name)."""
        group = parser.add_argument_group(title)
        for f in fields(cls):
            meta = f.metadata
            kwargs = dict(meta["argparse"])
            if kwargs.get("action") == "append":
                kwargs["default"] = []
            elif kwargs.get("action") != "store_true":
                kwargs["default"] = f.default
            group.add_argument(meta["flag"], dest=f.name, help=meta["help"], **kwargs)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Options":
        """The Options of parsed command-line arguments (see ``add_arguments``)."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


_FIELDS = {f.name: f for f in fields(Options)}
