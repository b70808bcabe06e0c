"""Loading FILE.py[:NAME] and parsing --input-shape."""
from __future__ import annotations

import pytest
import torch

from aimgen.errors import LoadError
from aimgen.loader import InputSpec, example_inputs, load_model, split_target

from conftest import EXAMPLES, write_model


def test_input_spec_parsing():
    assert InputSpec.parse("1,3,224,224") == InputSpec((1, 3, 224, 224))
    assert InputSpec.parse("1,16:int64") == InputSpec((1, 16), torch.int64)
    assert InputSpec.parse("2x8") == InputSpec((2, 8))
    for bad in ("", "1,,3", "a,b", "1,0", "1,3:complex7"):
        with pytest.raises(LoadError):
            InputSpec.parse(bad)


def test_split_target():
    assert split_target("m.py:Net") == (__import__("pathlib").Path("m.py"), "Net")
    assert split_target("dir/m.py")[1] is None


def test_integer_inputs_stay_inside_the_smallest_embedding_table():
    model = torch.nn.Embedding(7, 3)
    (ids,) = example_inputs([InputSpec((4, 50), torch.int64)], model)
    assert ids.dtype == torch.int64 and int(ids.max()) < 7


def test_picks_the_only_candidate_and_builds_it():
    loaded = load_model(str(EXAMPLES / "tiny_cnn.py"))
    assert loaded.name == "TinyCNN" and loaded.class_name == "TinyCNN"


def test_constructor_calls_are_recorded_for_a_class_and_for_an_instance_the_file_builds(tmp_path):
    """The calls that build the model are recorded (not the file's imports, which cost 0.5 s on
    torchvision); a model the file builds as it runs is built again while recorded."""
    source = ("import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n"
              "    def __init__(self, width=6):\n        super().__init__()\n        self.fc = nn.Linear(4, width)\n\n"
              "    def forward(self, x):\n        return self.fc(x)\n\n\nnet = Net(width=5)\n")
    path = write_model(tmp_path, source)
    by_class = load_model(f"{path}:Net").constructor_args
    assert by_class[""] == {"width": 6} and by_class["fc"]["out_features"] == 6
    by_instance = load_model(f"{path}:net").constructor_args
    assert by_instance[""] == {"width": 5} and by_instance["fc"]["in_features"] == 4


def test_a_failing_import_names_the_file_and_line(tmp_path):
    path = write_model(tmp_path, "import torch\n\nraise ValueError('boom')\n")
    with pytest.raises(LoadError, match=r"model.py:3: importing the model file failed: ValueError: boom"):
        load_model(str(path))


def test_a_name_that_is_not_there_lists_candidates(tmp_path):
    with pytest.raises(LoadError, match=r"there is no 'Nope'.*Candidates found: TinyCNN"):
        load_model(f"{EXAMPLES / 'tiny_cnn.py'}:Nope")


def test_flat_tensors_follows_the_exporters_order():
    from dataclasses import dataclass
    from typing import NamedTuple

    from aimgen.loader import flat_tensors

    a, b, c, d = (torch.full((1,), float(i)) for i in range(4))

    @dataclass
    class Out:
        first: torch.Tensor
        rest: tuple

    class Pair(NamedTuple):
        x: torch.Tensor
        y: torch.Tensor

    got = flat_tensors({"k": Out(a, (b, [c])), "n": Pair(d, a), "skip": 3})
    assert [int(t) for t in got] == [0, 1, 2, 3, 0]


def test_a_builder_function_is_picked_over_classes_and_the_reason_given(tmp_path):
    path = write_model(tmp_path, "from torch import nn\nclass A(nn.Linear):\n    def __init__(self):\n"
                       "        super().__init__(2, 2)\nnet = A()\ndef build():\n    return A()\n")
    loaded = load_model(str(path))
    assert loaded.name == "build"
    assert loaded.picked == ("picked because a builder function comes before net, A (builder functions, then module "
                             "instances, then classes); name another as FILE.py:NAME")
    loaded = load_model(f"{path}:A")
    assert loaded.picked is None and loaded.line() == "model: model.py:A (A)"


def test_several_of_one_kind_are_refused_with_an_example(tmp_path):
    path = write_model(tmp_path, "from torch import nn\nclass A(nn.Module):\n    pass\nclass B(nn.Module):\n    pass\n")
    with pytest.raises(LoadError, match=r"several candidate models of one kind \(nn.Module subclasses: A, B\).*"
                                        r"e.g. model.py:A"):
        load_model(str(path))
