"""What makes two partitionings the same model: the traced graph, the cuts and every weight.
A device and an edge that hold the same fingerprint compute the same thing at every cut; any
difference (other weights, other factory arguments, another granularity) changes it."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from coinfer.graph.partitioning import Partitioning

FINGERPRINT_BYTES = 16


def _tensor_bytes(t: torch.Tensor) -> bytes | memoryview:
    import torch  # here, not above: the wire reads FINGERPRINT_BYTES without torch

    flat = t.detach().contiguous().reshape(-1)
    if not flat.numel():
        return b""
    return flat.view(torch.uint8).numpy().data


def fingerprint(part: Partitioning) -> bytes:
    """A 128-bit BLAKE2b digest of the structure and the weights."""
    h = hashlib.blake2b(digest_size=FINGERPRINT_BYTES)

    def add(text: object) -> None:
        h.update(repr(text).encode())
        h.update(b"\0")

    add(("granularity", part.granularity, part.input_names))
    add(("outputs", [(m.shape, str(m.dtype)) for m in part.outputs]))
    for op in part.ops:
        add(
            (
                op.name,
                op.kind,
                op.target,
                op.input_shapes,
                op.params,
                (op.output.shape, str(op.output.dtype)) if op.output else None,
            )
        )
    for cut in part.cuts:
        add((cut.index, cut.num_device_ops, cut.boundary))
    for name, tensor in sorted(part.graph_module.state_dict().items()):
        add((name, str(tensor.dtype), tuple(tensor.shape)))
        h.update(_tensor_bytes(tensor))
    return h.digest()
