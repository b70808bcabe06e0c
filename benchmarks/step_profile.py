"""Where a training step goes, base against AiM: the profiles behind the README's rows that
miss their targets, and two edits of the generated file that say which work is whose.

    python benchmarks/step_profile.py digits          # about 2 minutes on 2 idle cores
    python benchmarks/step_profile.py mobilenet_v2    # batch 8; also resnet50, vit_tiny

Arms, interleaved, medians over repetitions, one torch thread; for ``digits`` the unit is an
epoch over scikit-learn's digits training split (batch 32, Adam: as forms.py), else a training
step at batch 8 with SGD (as forms.py):
- ``base``: the model as given;
- ``aim``: its AiM model as ``aimgen convert`` writes it (the default sum form);
- ``aim, no update blocks``: the same file with the lines that call its update blocks taken
  out: the memory reads alone (the update blocks' weights then get no gradient, and the
  optimizer skips them);
- ``aim, update blocks cells first``: the same file with ``MemoryUpdate.forward`` as aimgen wrote
  it until 2026-12-07 (the features and the memory transposed to cells first after the first
  product, ``F.linear`` for the rest, the gated write as three products: 20 operations where the
  file has 13): the same function (the script prints the difference), to measure what the form
  costs.

Each arm's time is split into forward, backward and optimizer step. Then one unit of ``base``
and of ``aim`` runs under the torch profiler, and the operations the AiM model adds are listed
(self CPU time and calls, AiM minus base, per training step; the profiler's own overhead
inflates every operation alike, so read them as shares).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import aimgen  # noqa: E402
import models  # noqa: E402
from aimgen.api import load_source  # noqa: E402
from forms import digits_batches  # noqa: E402
from run import log, median  # noqa: E402

#: MemoryUpdate.forward as aimgen wrote it until 2026-12-07: cells first after the features'
#: product, F.linear for the rest, the gated write as three products (20 operations, not 13)
CELLS_FIRST = '''    def forward(self, memory: MemoryState, features: torch.Tensor) -> MemoryState:
        f = features.reshape(*features.shape[:2], -1)
        w = self.weight_features.expand(f.shape[0], -1, -1)
        z = torch.baddbmm(self.bias_features[:, None], w, f).transpose(1, 2)  # (N, cells, rank)
        m = memory.tensor.reshape(*memory.tensor.shape[:2], -1).transpose(1, 2)
        z = torch.relu(z + F.linear(m, self.weight_memory))
        gate, candidate = F.linear(z, self.weight_write, self.bias_write).chunk(2, dim=-1)
        gate = torch.sigmoid(gate)
        m = (1 - gate) * m + gate * torch.tanh(candidate)
        return MemoryState(m.transpose(1, 2).reshape(-1, *memory.tensor.shape[1:]), batched=True)

'''


def variants(source: str) -> dict[str, str]:
    """The generated file, and the two edits of it (see the module docstring)."""
    no_updates = re.sub(r"^ +memory = self\.update_\w+\(memory, .*\)\n", "", source, flags=re.M)
    start = source.index("    def forward(self, memory: MemoryState, features")
    end = source.index("\n\n\n", start) + 1
    cells_first = source[:start] + CELLS_FIRST + source[end:]
    assert no_updates != source and "torch.lerp" not in cells_first
    return {"aim": source, "aim, no update blocks": no_updates, "aim, update blocks cells first": cells_first}


def steps(model, opt, batches) -> tuple[float, float, float]:
    """(forward, backward, optimizer) seconds of training on ``batches``."""
    model.train()
    spent = [0.0, 0.0, 0.0]
    for x, y in batches:
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        spent[0], spent[1], spent[2] = spent[0] + t1 - t0, spent[1] + t2 - t1, spent[2] + time.perf_counter() - t2
    return spent[0], spent[1], spent[2]


def op_table(arms: dict, opts: dict, batches, top: int) -> list[tuple[str, float, float]]:
    """(operation, self CPU microseconds, calls) per step that ``aim`` adds to ``base``."""
    from torch.profiler import profile

    batches = batches if len(batches) > 1 else batches * 3
    per_op = {}
    for name in ("base", "aim"):
        with profile() as prof:
            steps(arms[name], opts[name], batches)
        per_op[name] = {e.key: (e.self_cpu_time_total, e.count) for e in prof.key_averages()}
    rows = []
    for key, (us, calls) in per_op["aim"].items():
        b_us, b_calls = per_op["base"].get(key, (0.0, 0))
        rows.append((key, (us - b_us) / len(batches), (calls - b_calls) / len(batches)))
    rows.sort(key=lambda r: -r[1])
    return rows[:top]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", choices=("digits", "mobilenet_v2", "resnet50", "vit_tiny"))
    p.add_argument("--reps", type=int, default=9, help="units per arm (default 9)")
    p.add_argument("--top", type=int, default=15, help="operations listed (default 15)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = models.build(args.model)
    shape = models.INPUTS[args.model]
    conversion = aimgen.convert(base, [shape], source_name=args.model)
    arms = {"base": base}
    for name, text in variants(conversion.source).items():
        arms[name] = load_source(text, f"{args.model}_{len(arms)}").build_model()
        if name != "aim":
            arms[name].load_state_dict(arms["aim"].state_dict())
    x = torch.randn(2, *shape[1:])
    diff = (arms["aim"].eval()(x) - arms["aim, update blocks cells first"].eval()(x)).abs().max().item()
    log(f"cells-first update blocks against the generated ones: max abs difference {diff:.1e}")
    if args.model == "digits":
        batches, unit = digits_batches(), "epoch"
        opts = {name: torch.optim.Adam(m.parameters(), lr=1e-3) for name, m in arms.items()}
    else:
        batches, unit = [(torch.randn(8, *shape[1:]), torch.randint(0, 10, (8,)))], "step, batch 8"
        opts = {name: torch.optim.SGD(m.parameters(), lr=1e-4) for name, m in arms.items()}
    names = list(arms)
    for name in names:
        steps(arms[name], opts[name], batches)   # warm-up
    spent: dict[str, list] = {name: [] for name in names}
    for rep in range(args.reps):
        log(f"round {rep + 1} of {args.reps}")
        for name in (names if rep % 2 == 0 else names[::-1]):
            spent[name].append(steps(arms[name], opts[name], batches))
    total = {name: median(sum(t) for t in spent[name]) for name in names}
    print(f"\n{args.model}, one {unit} ({len(batches)} steps), medians of {args.reps}, {args.threads} thread(s), "
          "milliseconds:\n")
    print("| arm | forward | backward | optimizer | total | against base |")
    print("|---|---|---|---|---|---|")
    for name in names:
        f, b, o = (median(t[i] for t in spent[name]) * 1e3 for i in range(3))
        print(f"| {name} | {f:.1f} | {b:.1f} | {o:.1f} | {total[name] * 1e3:.1f} | {total[name] / total['base']:.2f}x |")
    print(f"\nWhat the AiM model adds, per step (torch profiler, self CPU time; top {args.top}):\n")
    print("| operation | microseconds | calls |")
    print("|---|---|---|")
    for key, us, calls in op_table(arms, opts, batches, args.top):
        print(f"| `{key}` | {us:.0f} | {calls:+.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
