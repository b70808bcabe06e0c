"""Regenerate the checked-in AiM sources of the bundled examples (one command):

    python generated/regenerate.py            # rewrite generated/*.py and *.json
    python generated/regenerate.py --check    # exit 1 if any file would change (tests use this)

Every change to the code generator shows up here as a reviewable diff.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# (output stem, model target, input shapes, plain too?)
EXAMPLES = [
    ("tiny_cnn", "examples/tiny_cnn.py:TinyCNN", ["1,3,32,32"], True),
    ("mlp", "examples/mlp.py:MLP", ["1,784"], True),
    ("resnet50", "examples/torchvision_models.py:resnet50", ["1,3,224,224"], True),
    ("vgg16", "examples/torchvision_models.py:vgg16", ["1,3,224,224"], False),
    ("swin_tiny", "examples/swin_tiny.py:SwinTiny", ["1,3,32,32"], True),
    ("text_transformer", "examples/text_transformer.py:TextTransformer", ["1,12,16"], True),
]


def render_all() -> dict[str, str]:
    """{file name: content} for every generated file, without writing anything."""
    from aimgen import api, report
    from aimgen.loader import InputSpec, load_model

    out: dict[str, str] = {}
    for stem, target, shapes, plain in EXAMPLES:
        loaded = load_model(str(ROOT / target))
        specs = [InputSpec.parse(s) for s in shapes]
        name = f"{Path(target.split(':')[0]).name}:{loaded.name}"
        aim = api.convert(loaded.model, specs, source_name=name, constructor_args=loaded.constructor_args)
        out[f"{stem}_aim.py"] = aim.source
        out[f"{stem}_aim.report.json"] = report.to_json(aim.plan, {"source": name})
        if plain:
            out[f"{stem}_plain.py"] = api.convert(loaded.model, specs, plain=True, source_name=name,
                                                  constructor_args=loaded.constructor_args).source
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on any difference")
    args = parser.parse_args(argv)
    files = render_all()
    stale = [n for n, text in files.items() if not (HERE / n).exists() or (HERE / n).read_text() != text]
    if args.check:
        for n in stale:
            print(f"stale: generated/{n}")
        return 1 if stale else 0
    for n in stale:
        (HERE / n).write_text(files[n])
        print(f"wrote generated/{n}")
    print(f"{len(files)} files, {len(stale)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
