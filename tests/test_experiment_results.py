"""Reporting: summaries and paired differences (with standard errors) computed right, and
the tables the README shows."""
from __future__ import annotations

import math

import pytest

from aimgen.experiment.results import markdown_table, paired_difference, paired_text, summarise
from aimgen.experiment.training import RunResult


def _runs():
    acc = {"base": [0.90, 0.80, 0.85], "aim": [0.92, 0.81, 0.84], "wider": [0.90, 0.82, 0.86]}
    return [RunResult(arm, seed, {"base": 100, "aim": 110, "wider": 111}[arm], val_acc=[0.5, 0.6],
                      epoch_seconds=[1.0, 3.0], best_epoch=2, best_val=0.6, test_acc=acc[arm][seed], cpu_seconds=2.0)
            for seed in range(3) for arm in ("base", "aim", "wider")]


def test_summaries_and_paired_differences():
    s = {x.arm: x for x in summarise(_runs())}
    assert s["base"].test_mean == pytest.approx(0.85) and s["base"].test_std == pytest.approx(0.05)
    # aim - base per seed: +0.02, +0.01, -0.01 -> mean 0.006667, sample std 0.015275, SE 0.008819
    assert s["aim"].diff_mean == pytest.approx(0.02 / 3) and s["aim"].diff_std == pytest.approx(0.0152753, rel=1e-4)
    assert s["aim"].diff_se == pytest.approx(0.0152753 / math.sqrt(3), rel=1e-4)
    assert s["aim"].seconds_per_epoch == pytest.approx(2.0) and s["aim"].cpu_seconds == pytest.approx(6.0)
    mean, std, n = paired_difference(_runs(), "aim", "wider")  # +0.02, -0.01, -0.02
    assert (mean, n) == (pytest.approx(-0.01 / 3), 3) and std == pytest.approx(0.0208167, rel=1e-4)
    assert paired_text(_runs(), "aim", "base") == "+0.67 ± 0.88 pt (SE, 3 seeds)"


def test_markdown_shows_the_table_differences_and_anchor():
    anchor = {"model": "FCN", "mean": 96.1, "std": 0.3, "source": "Ismail Fawaz et al. 2019",
              "statistic": "mean (std) over 10 runs"}
    text = markdown_table(summarise(_runs()), _runs(), "toy", anchor)
    assert "| aim | 110 (+10.0%) | 85.67% ± 5.69% | +0.67 ± 1.53 pt | 2.0 | 2.000 |" in text
    assert "AiM minus base: +0.67 ± 0.88 pt (SE, 3 seeds); AiM minus wider: -0.33 ± 1.20 pt (SE, 3 seeds)" in text
    assert "Published accuracy of the base architecture (FCN): 96.1% ± 0.3 (Ismail Fawaz et al. 2019" in text
    assert "ours (base arm): 85.00% ± 5.00%" in text
