"""aimgen/experiment/anchors.py: published accuracies, each with its source."""
from __future__ import annotations

import json

from aimgen.experiment import anchors


def test_published_accuracies_are_looked_up_with_their_source():
    gp = anchors.published("GunPoint", "FCN")
    assert (gp.mean, gp.std, gp.source) == (100.0, 0.0, "Ismail Fawaz et al. 2019")
    assert "dl-4-tsc" in gp.where and "10 runs" in gp.statistic
    assert anchors.published("gunpoint", "resnet").mean == 99.1
    assert anchors.published("JapaneseVowels", "ResNet").mean == 99.2
    assert anchors.published("BasicMotions", "FCN") is None  # not verified: left out, not estimated
    assert anchors.published("GunPoint", None) is None


def test_every_published_number_names_a_known_source():
    table = json.loads(anchors.DATA_FILE.read_text())
    assert len(table["accuracy"]) >= 8
    for row in table["accuracy"]:
        assert row["source"] in table["sources"] and row["row"] and 0 <= row["mean"] <= 100 and row["std"] >= 0
    for src in table["sources"].values():
        assert "Ismail Fawaz" in src["citation"] and "commit" in src["where"]
