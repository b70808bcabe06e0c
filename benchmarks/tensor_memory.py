"""The peak of live tensor memory during a piece of work, counted exactly (not sampled).

RSS on CPU moves with what the allocator keeps and returns, so two runs of the same step can
differ by 30%. This counts instead what the step holds: every tensor an operation creates
(forward, backward and the gradients, seen through a ``TorchDispatchMode``) is counted by
its storage's bytes from when it appears until it is freed (a ``weakref.finalize`` on the
storage), and the peak of that sum is reported. Tensors that exist before the work starts
(parameters, the input batch) are not counted: the result is what the step itself adds,
activations saved for backward, gradients and temporaries, the same quantity
``torch.cuda.max_memory_allocated`` gives on a GPU.
"""
from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class PeakTensorMemory(TorchDispatchMode):
    """``with PeakTensorMemory() as m: step()``, then ``m.peak`` (bytes above the start).

    A storage is counted once, however many tensors (views) of it operations return, from the
    first such tensor until the last of them is gone (tensors keep their Python object while
    PyTorch holds them, e.g. saved for backward, so a finalizer on it marks the real end)."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._holders: dict[int, list[int]] = {}  # storage pointer -> [tensors alive, bytes]

    def _release(self, key: int) -> None:
        entry = self._holders.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self._holders[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        given = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        inputs = {id(t) for t in given}
        outside = {t.untyped_storage().data_ptr() for t in given if t.device.type != "meta"}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type == "meta" or id(t) in inputs:
                continue  # an in-place op returns its input: counted when it was made, or not ours
            key = t.untyped_storage().data_ptr()
            if key == 0:
                continue
            entry = self._holders.get(key)
            if entry is None and key in outside:
                continue  # a view of a tensor made before the work (a parameter, the input)
            if entry is None:
                entry = self._holders[key] = [0, t.untyped_storage().nbytes()]
                self.live += entry[1]
                self.peak = max(self.peak, self.live)
            entry[0] += 1
            weakref.finalize(t, self._release, key)
        return out
