"""Published accuracies of the base architectures (``anchors.json``, with the source of each
number), shown beside the base arm: if the base lands near them the recipe is sound, and the
AiM-vs-base comparison means something.

A model file says which published architecture it is with a module-level ``PUBLISHED_AS``
(``"FCN"``, ``"ResNet"``); the data set is the UCR/UEA name of ``--data ucr:NAME``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA_FILE = Path(__file__).with_name("anchors.json")


@dataclass(frozen=True)
class Anchor:
    dataset: str
    model: str
    mean: float  # percent
    std: float
    source: str  # short citation, e.g. "Ismail Fawaz et al. 2019"
    where: str   # file and commit the number was copied from
    statistic: str

    def text(self) -> str:
        return f"{self.mean:.1f}% ± {self.std:.1f} ({self.source})"


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))


def published(dataset: str | None, model: str | None) -> Anchor | None:
    """The published accuracy of ``model`` (e.g. "FCN") on ``dataset`` (e.g. "GunPoint"), or None."""
    if not dataset or not model:
        return None
    table = _table()
    for row in table["accuracy"]:
        if row["dataset"].lower() == dataset.lower() and row["model"].lower() == model.lower():
            src = table["sources"][row["source"]]
            return Anchor(row["dataset"], row["model"], row["mean"], row["std"], src["short"], src["where"],
                          src["statistic"])
    return None


def sources() -> dict:
    return _table()["sources"]
