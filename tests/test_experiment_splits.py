"""aimgen/experiment/splits.py: stratified splits fixed by their own seed, quick-run caps."""
from __future__ import annotations

from aimgen.experiment import stratified_split
from aimgen.experiment.splits import cap_per_class


def test_split_is_stratified_disjoint_and_fixed_by_its_seed():
    labels = [i % 3 for i in range(30)]
    a, b = stratified_split(labels, (0.2, 0.2), 0), stratified_split(labels, (0.2, 0.2), 0)
    assert a == b and not set(a[0]) & set(a[1]) and not set(a[1]) & set(a[2])
    assert sorted(a[0] + a[1] + a[2]) == list(range(30))
    assert [sum(1 for i in a[1] if labels[i] == c) for c in range(3)] == [2, 2, 2]
    assert stratified_split(labels, (0.2, 0.2), 1) != a
    assert stratified_split(labels, (0.2, 0.0), 0)[2] == []  # no test share: UCR's official test is used


def test_cap_per_class_keeps_the_first_of_each():
    assert cap_per_class([0, 1, 0, 0, 1, 2], 2) == [0, 1, 2, 4, 5]
    assert cap_per_class([0, 1, 0], None) == [0, 1, 2]
