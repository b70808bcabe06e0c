"""aimgen/render.py: the template, the AIMGEN literal, example inputs, lines under 100 characters."""
from __future__ import annotations

import ast

import pytest

from aimgen.errors import InternalError
from aimgen.render import check_source, dict_literal, example_input_exprs, wrap_long_lines


def test_long_lines_are_split_the_way_a_person_would():
    line = ("        self.conv2 = MemoryConv2d(planes, planes, 3, stride=stride, padding=1, bias=False, "
            "memory_channels=1)")
    assert wrap_long_lines(line) == ("        self.conv2 = MemoryConv2d(planes, planes, 3, stride=stride, padding=1, "
                                     "bias=False,\n                                  memory_channels=1)")
    commented = "        out = self.conv2(out, memory.channels(1, out))  # = conv2(cat([out, m], 1)) and more words here"
    assert wrap_long_lines(commented).split("\n")[0] == "        # = conv2(cat([out, m], 1)) and more words here"
    text = "x = f('a, (b', " + ", ".join(f"arg{i}" for i in range(30)) + ")"
    wrapped = wrap_long_lines(text)
    assert all(len(x) <= 99 for x in wrapped.split("\n")) and ast.dump(ast.parse(wrapped)) == ast.dump(ast.parse(text))


def test_a_single_index_is_never_split_into_a_tuple():
    """Swin V2's buffers are the items of a pair a method returns, ``f(...)[0]``: split as a
    call, the index became ``[\n 0,\n ]``, the tuple (0,), and the model failed to build
    (tuple indices must be integers). The call before it is split instead."""
    call = ("make_pair_wise_relative_positions(device=None, dtype=torch.float32, window_size=(8, 8), "
            "pretrained_window_size=(0, 0))[0]")
    argument = f"table = nn.Buffer(\n            {call},\n            persistent=False,\n)"   # as written
    for text in (f"        table = nn.Buffer({call})", argument, "x = " + "a" * 96 + "[i]"):
        wrapped = wrap_long_lines(text)
        assert ast.dump(ast.parse(wrapped.strip())) == ast.dump(ast.parse(text.strip())), wrapped
        assert all(len(x) <= 99 for x in wrapped.split("\n")[:-1] if not x.endswith("[i]"))
    assert "pretrained_window_size=(0, 0))[0]," in wrap_long_lines(argument)


def test_a_sum_whose_first_line_would_still_be_too_long_is_written_one_term_a_line():
    """A memory read added to a functional conv whose arguments became ``self.`` parameters."""
    line = ("        conv2d = F.conv2d(x, self.weight, None, [self.stride, self.stride], (0, 0), (1, 1), "
            "self.in_channels) + read_conv_memory(memory.channels(1, x), self.weight_memory, F.conv2d, "
            "[self.stride, self.stride], (0, 0), (1, 1), kernel_size=(3, 3))")
    wrapped = wrap_long_lines(line)
    lines = wrapped.split("\n")
    assert lines[0] == "        conv2d = (" and lines[-1] == "        )"
    assert lines[1].startswith("            F.conv2d(x, self.weight") and any(
        x.startswith("            + read_conv_memory(") for x in lines)
    assert all(len(x) <= 99 for x in lines)
    assert ast.dump(ast.parse(wrapped.strip())) == ast.dump(ast.parse(line.strip()))


def test_a_long_return_of_outputs_and_memory_is_written_one_item_a_line():
    """YOLO's train() return (a dict of its raw predictions, then the memory) was 110 characters."""
    line = ("            return {'boxes': boxes, 'scores': scores, 'feats': [act, model_18_cv2_act, "
            "model_21_cv2_act]}, memory.final()")
    wrapped = wrap_long_lines(line)
    assert wrapped.split("\n") == [
        "            return (",
        "                {'boxes': boxes, 'scores': scores,",
        "                 'feats': [act, model_18_cv2_act, model_21_cv2_act]},",
        "                memory.final(),",
        "            )",
    ]
    body = "def f():\n" + "\n".join(x[8:] for x in (line, wrapped))
    tree = ast.parse(body)
    assert ast.dump(tree.body[0].body[0]) == ast.dump(tree.body[0].body[1])
    assert wrap_long_lines("        return " + "x" * 95) == "        return " + "x" * 95   # one item: as it is


def test_the_metadata_dict_is_a_literal_in_lines_of_at_most_99():
    data = {f"key{i}": list(range(i)) for i in range(12)}
    text = dict_literal(data)
    assert ast.literal_eval(text) == data and max(map(len, text.split("\n"))) <= 99


def test_a_long_reason_in_the_metadata_is_written_over_several_lines():
    """Why a module is kept whole, with the file and line, was one 180-character line."""
    why = ("torch.fx cannot trace it (TraceError: symbolically traced variables cannot be used as inputs "
           "to control flow at ultralytics/nn/modules/head.py:1678 (`min(self.num_queries, feats.shape[1]),`))")
    data = {"format": 1, "kept_whole": {"model.28": why, "model.3": "listed in leaf="}, "depends": ["ultralytics"]}
    text = dict_literal(data)
    assert ast.literal_eval(text) == data and max(map(len, text.split("\n"))) <= 99
    assert "    'kept_whole': {\n        'model.28': (\n            'torch.fx cannot trace it " in text
    assert "        'model.3': 'listed in leaf=',\n    },\n    'depends': ['ultralytics'],\n}" in text


def test_example_inputs_are_seeded_and_integer_inputs_stay_below_the_embedding():
    assert example_input_exprs([(1, 3, 8, 8), (1, 16)], ["float32", "int64"], 100) == [
        "torch.randn(batch, 3, 8, 8, generator=g)", "torch.randint(0, 100, (batch, 16), generator=g)"]


def test_source_that_does_not_parse_is_a_bug_in_aimgen():
    with pytest.raises(InternalError, match="(?s)does not parse.*bug in aimgen"):
        check_source("def f(:\n", "the generated source")


def test_parentheses_around_one_expression_never_become_a_tuple():
    """``mul * (tanh(...) + 1.0)`` over the width: its parentheses hold one expression, which a
    trailing comma would make a one-item tuple (GPT-2's GELU did). Left long rather than wrapped
    there; a call's or return's items still wrap."""
    line = "        h = mul * (torch.tanh((h + pow_ * 0.044715) * 0.7978845608028654) + 1.0 + (aaaaaaaaaaaaaaaaaaaa + 1))"
    out = wrap_long_lines(line)
    assert ast.dump(ast.parse(out.strip())) == ast.dump(ast.parse(line.strip()))
    wrapped = wrap_long_lines("        return (torch.tanh((h + pow_ * 0.044715) * 0.7978845608028654) + 1.0, bbbbbbbbbbbbbbbbbbbbbbbbbbb)")
    assert wrapped.count("\n") == 1 and ast.parse(wrapped.strip())


def test_a_comment_moved_above_its_line_is_wrapped_to_the_width():
    line = ("        self.table = nn.Parameter(torch.empty(9, 4).uniform_(-6 ** -0.5, 6 ** -0.5))  # its own init "
            "could not be read: drawn like a layer's weight; load base weights for the model's values")
    out = wrap_long_lines(line).split("\n")
    assert out == ["        # its own init could not be read: drawn like a layer's weight; load base weights for the",
                   "        #   model's values",
                   "        self.table = nn.Parameter(torch.empty(9, 4).uniform_(-6 ** -0.5, 6 ** -0.5))"]
