"""Count the aten ops a piece of code dispatches, and those that synchronise with the host.

    with OpRecorder() as rec:
        loss = criterion(...); loss.backward()
    rec.total, dict(rec.syncs)

An op synchronises when its result's shape or value must be read on the host before the next
op can be issued: `nonzero` (and `torch.where(cond)`), `.item()` (`_local_scalar_dense`),
`masked_select`, indexing with a boolean mask, `unique`, `equal`, `is_nonzero` (`if tensor:`),
and the Tensor methods that read values without an aten op of their own (`tolist`, `numpy`:
on the CPU they read the memory directly, so they are caught one level up, as torch functions).

On the CPU nothing waits, but the same ops are what stall a GPU stream; counting them on the
CPU lets tests hold the number at zero. Backward ops are recorded too (CPU autograd runs them
in the calling thread).

`host_data` counts apart the tensors made from Python data (`aten.lift_fresh`): on a GPU
such a tensor reaches the device by a copy from pageable host memory, for which "the driver
may synchronize with the stream" (CUDA's API synchronization behavior). Fine once per run,
not in every step.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

SYNC_OPS = frozenset(
    {
        "aten.nonzero",
        "aten._local_scalar_dense",
        "aten.item",
        "aten.masked_select",
        "aten.is_nonzero",
        "aten.equal",
        "aten.unique",
        "aten._unique",
        "aten._unique2",
        "aten.unique_consecutive",
        "aten.unique_dim",
    }
)


class OpRecorder(TorchDispatchMode):
    """Counts every dispatched aten op by name (`ops`) and the synchronising ones (`syncs`)."""

    def __init__(self):
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.syncs: Counter[str] = Counter()
        self.host_data = 0
        self._reads = _HostReads(self.syncs)

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    def __enter__(self):
        self._reads.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._reads.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        self.ops[name] += 1
        if name in SYNC_OPS or (name.startswith("aten.index") and _bool_index(args)):
            self.syncs[name] += 1
        elif name == "aten.lift_fresh":
            self.host_data += 1
        return func(*args, **(kwargs or {}))


def _bool_index(args) -> bool:
    """aten.index / index_put with a boolean mask among its indices: the output's shape is the
    number of True values, known only on the device."""
    indices = args[1] if len(args) > 1 else None
    if not isinstance(indices, list | tuple):
        return False
    return any(
        isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices
    )


class _HostReads(TorchFunctionMode):
    """Counts `Tensor.tolist` and `Tensor.numpy` into `syncs` (a host read of the values)."""

    READS = {torch.Tensor.tolist: "Tensor.tolist", torch.Tensor.numpy: "Tensor.numpy"}

    def __init__(self, syncs: Counter):
        super().__init__()
        self.syncs = syncs

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.READS:
            self.syncs[self.READS[func]] += 1
        return func(*args, **(kwargs or {}))
